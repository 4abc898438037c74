"""glow_tf2.train.precision_pick: which arithmetic a run trains in, and how that was decided."""

import json
import math

import pytest

from glow_tf2.train import precision_pick
from glow_tf2.train import threads
from tests.train.test_thread_pick import _config as thread_pick_config


def _config(logdir, **values):
  return thread_pick_config(logdir, **{"pick_threads": False, **values})


class Timer:
  def __init__(self, float32, bfloat16):
    self.table = {"float32": float32, "mixed_bfloat16": bfloat16}
    self.calls = []

  def __call__(self, config):
    self.calls.append(config.model.precision)
    return self.table[config.model.precision]


def _choose(config, tmp_path, timer, **kw):
  return precision_pick.choose(config, str(tmp_path / "cache.json"), timer, has_gpu=False, **kw)


@pytest.mark.parametrize(
  "float32, bfloat16, expected",
  [(0.130, 0.100, "mixed_bfloat16"), (0.104, 0.100, "float32"), (0.100, 0.130, "float32")],
)
def test_times_both_and_takes_bfloat16_only_past_the_margin(tmp_path, float32, bfloat16, expected):
  timer = Timer(float32, bfloat16)
  config, how = _choose(_config(tmp_path / "run"), tmp_path, timer)
  assert timer.calls == ["float32", "mixed_bfloat16"]
  assert config.model.precision == expected and how.startswith(expected)
  assert f"{float32 / bfloat16:.2f}x" in how
  cache = json.loads((tmp_path / "cache.json").read_text())
  (entry,) = cache.values()
  assert entry["precision"] == expected
  assert entry["ms_per_step"] == {"float32": 1000 * float32, "mixed_bfloat16": 1000 * bfloat16}
  # The same machine and model again: the cache answers, nothing is timed.
  again = Timer(math.nan, math.nan)
  config2, how2 = _choose(_config(tmp_path / "run2"), tmp_path, again)
  assert again.calls == [] and config2.model.precision == expected and "timed earlier" in how2
  # The key is of the model in float32, whatever was picked.
  assert list(cache) == [threads.machine_key(_config(tmp_path / "run"))]


def test_a_run_keeps_its_record_across_resumes(tmp_path):
  config, how = _choose(_config(tmp_path / "run"), tmp_path, Timer(0.2, 0.1))
  precision_pick.record(config, how)
  record = json.loads((tmp_path / "run" / "precision.json").read_text())
  assert record == {"precision": "mixed_bfloat16", "how": how}
  # Resumed where bfloat16 would now be slower: the run keeps what it recorded.
  resumed, how = _choose(_config(tmp_path / "run"), tmp_path / "other", Timer(0.1, 0.2))
  assert resumed.model.precision == "mixed_bfloat16" and "as this run recorded" in how


@pytest.mark.parametrize(
  "values, gpu, message",
  [
    ({"model.precision": "mixed_float16"}, False, "--precision=mixed_float16 as given"),
    ({"pick_precision": False}, False, "--nopick_precision"),
    ({"train_steps": 500}, False, "does not repay"),
    ({"inference": True}, False, "recorded no pick"),
    ({}, True, "a GPU"),
  ],
)
def test_what_is_kept_without_timing(tmp_path, values, gpu, message):
  timer = Timer(0.2, 0.1)
  given = _config(tmp_path / "run", **values)
  config, how = precision_pick.choose(given, str(tmp_path / "c.json"), timer, has_gpu=gpu)
  assert timer.calls == [] and message in how
  assert config.model.precision == given.model.precision


def test_an_older_run_folder_keeps_float32(tmp_path):
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "config.json").write_text("{}")
  config, how = _choose(_config(tmp_path / "run"), tmp_path, Timer(0.2, 0.1))
  assert config.model.precision == "float32" and "recorded no pick" in how


def test_a_failed_timing_keeps_float32(tmp_path):
  def broken(config):
    raise RuntimeError("the child died")

  config, how = _choose(_config(tmp_path / "run"), tmp_path, broken)
  assert config.model.precision == "float32" and "failed" in how
  assert not (tmp_path / "cache.json").exists()


def test_the_real_probe_times_a_step_in_a_child(tmp_path):
  config = _config(tmp_path / "run", **{"model.precision": "mixed_bfloat16"})
  seconds = precision_pick._probe(config)  # pylint: disable=protected-access
  assert 0 < seconds < 30
