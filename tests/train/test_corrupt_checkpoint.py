"""A checkpoint that does not read is skipped for the newest one that does (resume, glow-eval,
glow-export), with a logged line naming its bad file; when none reads, one line naming them.

One tiny run of 20 steps with a checkpoint every 3 is trained in this process; each test breaks
a copy of its folder (a data file cut short as by a full disk, a flipped bit, a lost file)."""

import logging
import os
import re
import shutil

import pytest
import tensorflow as tf

from glow_tf2 import run_dir
from glow_tf2.cli import _run
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import loop
from glow_tf2_tools import kill_resume
from tests.helpers import mnist_dir
from tests.helpers import run_console_scripts
from tests.helpers import tiny_config

STEPS = 20  # two epochs of 10 steps
QUICK = dict(
  train_steps=STEPS,
  checkpoint_steps=3,
  checkpoint_secs=0.0,
  keep_checkpoints=100,
  epochs_full_sample=1000,
  n_sample=4,
)
DATA = "data-00000-of-00001"


def fit(logdir, data_dir) -> None:
  config = tiny_config(logdir, data_dir, **QUICK)
  problem = problems.get_problem("mnist", data_dir=data_dir, channels=1)
  loop.Trainer(config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset).fit()


def cut(path) -> None:
  """Truncates a file to half its size, as a full disk or an interrupted copy leaves it."""
  os.truncate(path, os.path.getsize(path) // 2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  data_dir = mnist_dir(tmp_path_factory)
  logdir = tmp_path_factory.mktemp("corrupt") / "reference"
  fit(logdir, data_dir)
  return dict(logdir=logdir, data_dir=data_dir)


def copy(trained, tmp_path, name="run"):
  target = tmp_path / name
  shutil.copytree(trained["logdir"], target)
  return target


def warnings(caplog) -> list[str]:
  return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_truncated_newest_checkpoint_resumes_from_the_one_before_and_ends_bitwise(
  trained, tmp_path, caplog
):
  run = copy(trained, tmp_path)
  bad = run / "checkpoints" / f"ckpt-{STEPS}.{DATA}"
  cut(bad)  # before: IndexError: Read less bytes than requested
  with caplog.at_level(logging.INFO, logger="absl"):
    fit(run, trained["data_dir"])
  assert f"{bad} does not read (Read less bytes than requested): falling back to ckpt-18" in (
    warnings(caplog)
  )
  assert f"resumed from {run}/checkpoints/ckpt-18 at step 18" in caplog.text
  final = f"checkpoints/ckpt-{STEPS}"
  diffs = kill_resume.weight_diffs(str(trained["logdir"] / final), str(run / final))
  assert len(diffs) > 20 and set(diffs.values()) == {0.0}, {k: v for k, v in diffs.items() if v}
  assert kill_resume.logs_equal(str(trained["logdir"]), str(run))
  assert run_dir.unreadable(str(run / final)) is None  # the resave replaced the broken files


def test_each_kind_of_damage_is_named_with_its_file_and_reason(trained, tmp_path):
  run = copy(trained, tmp_path)
  folder = run / "checkpoints"
  assert run_dir.unreadable(str(folder / "ckpt-20")) is None
  flipped = folder / f"ckpt-18.{DATA}"
  data = bytearray(flipped.read_bytes())
  data[len(data) // 2] ^= 0xFF
  flipped.write_bytes(bytes(data))
  (folder / f"ckpt-15.{DATA}").unlink()
  cut(folder / "ckpt-12.index")
  (folder / "ckpt-9.index").unlink()
  found = {step: run_dir.unreadable(str(folder / f"ckpt-{step}")) for step in (18, 15, 12, 9)}
  assert found[18][0] == str(flipped) and "Checksum does not match" in found[18][1]
  assert found[15][0] == str(folder / "ckpt-15.data-*")  # and TensorFlow's "not found"
  assert found[12][0] == str(folder / "ckpt-12.index")
  assert found[9] == (str(folder / "ckpt-9.index"), "missing")
  assert all(why and "\n" not in why for _, why in found.values()), found
  # A checkpoint named on the command line (--checkpoint=PATH) is that one or none.
  named = str(folder / "ckpt-18")
  with pytest.raises(
    run_dir.UnreadableCheckpointError, match=f"checkpoint {named} does not read: "
  ):
    run_dir.find_checkpoint(str(run), "A", named)
  with pytest.raises(FileNotFoundError, match="ckpt-9.index missing"):
    run_dir.find_checkpoint(str(run), "A", str(folder / "ckpt-9"))
  assert run_dir.find_checkpoint(str(run), "A", str(folder / "ckpt-10")) == str(folder / "ckpt-10")
  # Newest first, in the order of the `checkpoint` file; without it, by number.
  cut(folder / f"ckpt-20.{DATA}")
  assert run_dir.newest_readable(str(folder)) == str(folder / "ckpt-10")
  order = run_dir.checkpoints_newest_first(str(folder))
  (folder / "checkpoint").write_text("garbage {")
  assert run_dir.checkpoints_newest_first(str(folder)) == [p for p in order if "ckpt-9" not in p]
  assert run_dir.newest_readable(str(folder)) == str(folder / "ckpt-10")


def test_glow_eval_and_glow_export_load_the_newest_checkpoint_that_reads(trained, tmp_path, caplog):
  run = copy(trained, tmp_path)
  cut(run / "checkpoints" / f"ckpt-20.{DATA}")
  best_a = tf.train.latest_checkpoint(str(run / "best_A"))
  cut(f"{best_a}.{DATA}")
  with caplog.at_level(logging.WARNING, logger="absl"):
    last = _run.load_run(str(run), "last")  # glow-export --checkpoint=last, glow-eval
  older = str(run / "checkpoints" / "ckpt-18")
  assert last.checkpoints == [older, older]
  # One line for the bad file, though both sides (and the coupled prior) looked for it.
  assert warnings(caplog) == [
    f"{run}/checkpoints/ckpt-20.{DATA} does not read (Read less bytes than requested): "
    "falling back to ckpt-18"
  ]
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger="absl"):
    auto = _run.load_run(str(run), "auto")
  # A's best model does not read: its newest readable checkpoint is the training one.
  assert auto.checkpoints == [older, tf.train.latest_checkpoint(str(run / "best_B"))]
  assert f"{best_a}.{DATA} does not read" in warnings(caplog)[0]
  assert [w.getMessage() for w in caplog.records].count(warnings(caplog)[0]) == 1


def test_no_checkpoint_that_reads_is_refused_in_one_line_naming_the_files(trained, tmp_path):
  run = copy(trained, tmp_path)
  for folder in ("checkpoints", "best_A", "best_B"):
    for name in os.listdir(run / folder):
      if DATA in name:
        cut(run / folder / name)
  with pytest.raises(run_dir.UnreadableCheckpointError) as refused:
    run_dir.newest_readable(str(run / "checkpoints"))
  message = str(refused.value)
  assert message.startswith(f"no checkpoint in {run}/checkpoints reads (8 tried): ")
  assert f"{run}/checkpoints/ckpt-20.{DATA} (Read less bytes than requested); " in message
  assert message.endswith("; and 4 more") and "ckpt-12." in message and "ckpt-10" not in message
  # The binaries: exit 1 and that one line, nothing trained over the broken run.
  data = trained["data_dir"]
  quick = [f"--{k}={v}" for k, v in QUICK.items()]
  before = sorted(os.listdir(run / "checkpoints"))
  forked = run_console_scripts(
    [
      ["glow-train", "--problem=mnist", "--preset=smoke", f"--data_dir={data}", f"--logdir={run}"]
      + quick,
      ["glow-eval", f"--logdir={run}"],
      ["glow-export", f"--logdir={run}", f"--export_dir={tmp_path / 'out'}", "--checkpoint=last"],
    ],
  )
  for result, program in zip(forked, ("glow-train", "glow-eval", "glow-export")):
    line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    where = "checkpoints" if program != "glow-eval" else "best_A"
    assert re.match(rf"{program}: (model A: )?no checkpoint in {run}/{where} reads ", line), line
  assert sorted(os.listdir(run / "checkpoints")) == before  # nothing saved over the run
  assert not (tmp_path / "out").exists()
