"""glow_tf2.train.threads: which thread pools a run trains with, and how that was decided."""

import json
import os

import pytest

from glow_tf2 import config as config_lib
from glow_tf2.train import distribute
from glow_tf2.train import threads


def _config(logdir, **values):
  base = {
    "data.problem": "mnist",
    "data.channels": 1,
    "model.n_levels": 2,
    "model.depth": 1,
    "model.width": 8,
    "n_batch_train": 8,
    "n_batch_init": 8,
    "gradient_checkpointing": False,
    "logdir": str(logdir),
    "train_steps": 5000,
  }
  return config_lib.build({**base, **values})


class FakeTimer:
  """Seconds per step of each candidate from a table; remembers what it was asked."""

  def __init__(self, table):
    self.table = table
    self.calls = []

  def __call__(self, config, candidate):
    self.calls.append(candidate)
    return self.table[candidate]


TABLE = {(0, 0): 0.150, (1, 2): 0.100, (2, 1): 0.140}


def test_candidates():
  assert threads.candidates(1) == [(0, 0), (1, 1)]
  assert threads.candidates(2) == [(0, 0), (1, 2), (2, 1)]
  assert threads.candidates(8) == [(0, 0), (1, 8), (8, 1), (4, 2), (2, 4)]


def test_times_every_candidate_and_takes_the_fastest(tmp_path):
  timer = FakeTimer(TABLE)
  cache = tmp_path / "cache" / "threads.json"
  config, how = threads.choose(_config(tmp_path / "run"), str(cache), timer, cores=2)
  assert sorted(timer.calls) == sorted(TABLE)
  assert (config.intra_op_threads, config.inter_op_threads) == (1, 2)
  assert "100.0 ms" in how and "150.0 ms" in how and "1.50x" in how
  entry = json.loads(cache.read_text())[threads.machine_key(config)]
  assert (entry["intra_op"], entry["inter_op"]) == (1, 2)
  assert len(entry["ms_per_step"]) == 3
  assert not (tmp_path / "run").exists()  # nothing in the run folder before the trainer starts
  threads.record(config, how)
  record = json.loads((tmp_path / "run" / threads.RUN_FILE).read_text())
  assert (record["intra_op"], record["inter_op"], record["how"]) == (1, 2, how)
  # A resume reads the record, whatever the cache says by then.
  cache.write_text("{}")
  again, how = threads.choose(_config(tmp_path / "run"), str(cache), FakeTimer(TABLE), cores=2)
  assert (again.intra_op_threads, again.inter_op_threads) == (1, 2) and "recorded" in how


def test_the_cache_answers_for_the_same_machine_and_model(tmp_path):
  cache = str(tmp_path / "threads.json")
  threads.choose(_config(tmp_path / "run1"), cache, FakeTimer(TABLE), cores=2)
  timer = FakeTimer(TABLE)
  config, how = threads.choose(_config(tmp_path / "run2", seed=7), cache, timer, cores=2)
  assert timer.calls == []  # the seed does not change a step's speed: same key
  assert (config.intra_op_threads, config.inter_op_threads) == (1, 2)
  assert "timed earlier" in how
  # Another model is another key: timed again.
  wider = FakeTimer({(0, 0): 0.1, (1, 2): 0.3, (2, 1): 0.2})
  config, _ = threads.choose(_config(tmp_path / "run3", **{"model.width": 16}), cache, wider, 2)
  assert len(wider.calls) == 3
  assert (config.intra_op_threads, config.inter_op_threads) == (0, 0)
  assert len(json.loads(open(cache).read())) == 2


def test_a_resumed_run_keeps_its_record(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  (run / threads.RUN_FILE).write_text(json.dumps({"intra_op": 2, "inter_op": 1}))
  timer = FakeTimer(TABLE)
  config, how = threads.choose(_config(run), str(tmp_path / "c.json"), timer, cores=2)
  assert timer.calls == []
  assert (config.intra_op_threads, config.inter_op_threads) == (2, 1)
  assert "recorded" in how


def test_a_run_folder_without_a_record_is_left_alone(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  (run / "config.json").write_text("{}")
  timer = FakeTimer(TABLE)
  config, _ = threads.choose(_config(run), str(tmp_path / "c.json"), timer, cores=2)
  assert timer.calls == []
  assert (config.intra_op_threads, config.inter_op_threads) == (0, 0)
  assert not (run / threads.RUN_FILE).exists()


@pytest.mark.parametrize(
  "values, pools, why",
  [
    ({"intra_op_threads": 1}, (1, 0), "as given"),
    ({"inter_op_threads": 3}, (0, 3), "as given"),
    ({"pick_threads": False}, (0, 0), "--nopick_threads"),
    ({"train_steps": threads.PROBE_MIN_STEPS - 1}, (0, 0), "under 1000 steps"),
    ({"inference": True}, (0, 0), "recorded no pick"),
  ],
)
def test_no_timing(tmp_path, values, pools, why):
  timer = FakeTimer(TABLE)
  config, how = threads.choose(_config(tmp_path / "run", **values), str(tmp_path / "c"), timer, 2)
  assert timer.calls == []
  assert (config.intra_op_threads, config.inter_op_threads) == pools
  assert why in how


def test_a_corrupt_cache_is_rewritten(tmp_path):
  cache = tmp_path / "threads.json"
  cache.write_text('{"half a fi')
  config, _ = threads.choose(_config(tmp_path / "run"), str(cache), FakeTimer(TABLE), cores=2)
  assert (config.intra_op_threads, config.inter_op_threads) == (1, 2)
  assert threads.machine_key(config) in json.loads(cache.read_text())


def test_a_failing_probe_falls_back_to_the_default(tmp_path):
  def broken(config, candidate):
    raise RuntimeError("timing child died")

  config, how = threads.choose(_config(tmp_path / "run"), str(tmp_path / "c"), broken, cores=2)
  assert (config.intra_op_threads, config.inter_op_threads) == (0, 0)
  assert "failed" in how
  assert not os.path.exists(tmp_path / "c")  # nothing cached from a failed timing


def test_planned_steps():
  config = config_lib.build({"data.n_train": 1000, "n_batch_train": 64, "epochs": 3})
  assert threads.planned_steps(config) == 3 * 16
  assert threads.planned_steps(config_lib.build({"train_steps": 20}, config)) == 20


def test_the_child_times_the_real_step_with_its_pools(tmp_path):
  """One real probe: the config crosses to a fresh process, which sizes its pools first."""
  config = _config(tmp_path / "run", **{"loss.joint_train": True})
  seconds = threads.probe_in_child(config, (1, 2))
  assert 0 < seconds < 30


@pytest.mark.parametrize(
  "tf_config, chief",
  [
    (None, True),  # one process
    (
      {"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief", "index": 0}},
      True,
    ),
    (
      {"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}},
      False,
    ),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
  ],
)
def test_only_the_chief_records_its_pools(tmp_path, monkeypatch, tf_config, chief):
  # Before any strategy exists, TF_CONFIG alone decides, as distribute.worker_identity does later.
  if tf_config is None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
  else:
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
  task = (tf_config or {}).get("task", {})
  cluster = (tf_config or {}).get("cluster")
  assert distribute.is_chief_task(task.get("type"), task.get("index"), cluster) is chief
  threads.record(_config(tmp_path, intra_op_threads=2, inter_op_threads=1), "given")
  assert os.path.exists(tmp_path / threads.RUN_FILE) is chief
