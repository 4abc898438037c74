"""A run folder written by an older glow_tf2 still reads, resumes, evaluates and exports.

tests/fixtures/run_8ba1806/ holds what the code of commit 8ba1806 wrote for

    glow-train --problem=mnist --preset=smoke --logdir=/tmp/oldrun --epochs=1

(run from a worktree of that commit): its config.json, and the first line (the run's flags by
name) and the epoch-1 record of train_A.txt and test_A.txt (the code of 8ba1806 writes the same
first line to all four logs). Fields added to the config since (model.noise_sigma,
warm_start_steps, pick_precision, judge_samples) are not in it and must take their defaults.
The checkpoint format has not changed since, so the checkpoints here are today's: a tiny run
trained now, whose config.json and log headers are then replaced by the fixture's. (The old
code's own checkpoints were resumed, evaluated and exported by hand with today's binaries.)
"""

import dataclasses
import json
import os
import pathlib
import shutil

from absl import flags
import pytest
import tensorflow as tf

from glow_tf2 import config as config_lib
from glow_tf2 import run_dir
from glow_tf2.cli import train
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import loop
from glow_tf2.train import outputs
from glow_tf2_tools import report
from tests import helpers

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "run_8ba1806"
# The command that wrote the fixture, but --logdir (read_config puts the folder's place there).
COMMAND = ["glow-train", "--problem=mnist", "--preset=smoke", "--epochs=1"]
LOGS = ("train_A.txt", "train_B.txt", "test_A.txt", "test_B.txt")


def first_line(name: str = "train_A.txt") -> str:
  with open(FIXTURE / name) as f:
    return f.readline()


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
  """(data folder, Problem) of the embedded mnist pairs, 1 channel."""
  data_dir = helpers.mnist_dir(tmp_path_factory)
  return data_dir, problems.get_problem("mnist", data_dir=data_dir, channels=1)


def test_config_json_reads_with_the_new_fields_at_their_defaults():
  saved = json.loads((FIXTURE / "config.json").read_text())["config"]
  missing = ("warm_start_steps", "pick_precision", "judge_samples")
  assert "noise_sigma" not in saved["model"] and not set(missing) & set(saved)
  run = run_dir.read_config(str(FIXTURE))
  assert run.keys == ("A", "B") and run.resolved
  config = run.config
  assert config.logdir == str(FIXTURE)
  assert config.model.noise_sigma == 0.0
  assert config.warm_start_steps == 0 and config.judge_samples == 0
  assert config.pick_precision == config_lib.default_of("pick_precision")
  assert config.model.image_shape == (32, 32, 1)


def test_config_json_equals_what_todays_flags_build_for_the_same_command(mnist):
  _, problem = mnist
  fv = flags.FlagValues()
  train.define_flags(fv)
  fv([*COMMAND, f"--logdir={FIXTURE}"])
  today = train.config_from_flags(fv).resolve(problem)
  saved = run_dir.read_config(str(FIXTURE)).config
  assert saved == today, {
    field.name: (getattr(saved, field.name), getattr(today, field.name))
    for field in dataclasses.fields(saved)
    if getattr(saved, field.name) != getattr(today, field.name)
  }


def test_the_first_log_line_alone_gives_the_same_run(tmp_path, mnist):
  """A folder without config.json (older still) is read from the first line of train_A.txt."""
  _, problem = mnist
  for name in ("train_A.txt", "test_A.txt"):
    shutil.copy(FIXTURE / name, tmp_path / name)
  settings = run_dir.read_first_line(str(tmp_path))
  assert settings["problem"] == "mnist" and settings["flow_permutation"] == "conv"
  run = run_dir.read_config(str(tmp_path))
  assert not run.resolved and run.keys == ("A",)  # no train_B.txt here
  from_json = run_dir.read_config(str(FIXTURE)).config
  assert run.config.resolve(problem) == dataclasses.replace(from_json, logdir=str(tmp_path))


def test_todays_log_readers_read_the_old_logs(tmp_path):
  # glow-report's test curve: bits of test_A.txt against the cumulative train_time of
  # train_A.txt (a log keyed by flag name holds the cumulative time).
  train_record = json.loads((FIXTURE / "train_A.txt").read_text().splitlines()[1])
  test_record = json.loads((FIXTURE / "test_A.txt").read_text().splitlines()[1])
  curve = report.test_curve(str(FIXTURE), "A")
  assert curve["minutes"].tolist() == [train_record["train_time"] / 60.0]
  assert curve["bits"].tolist() == [float(test_record["bits_x"])]
  # The trainer's reader, when it resumes at epoch 1: the header and the record are kept as
  # they are; at epoch 0 only the header is.
  for name in ("train_A.txt", "test_A.txt"):
    shutil.copy(FIXTURE / name, tmp_path / name)
    log = outputs.JsonLog(str(tmp_path / name), {"ignored": True}, resume_epoch=1)
    assert log.last == json.loads((FIXTURE / name).read_text().splitlines()[1])
    assert (tmp_path / name).read_text() == (FIXTURE / name).read_text()
  log = outputs.JsonLog(str(tmp_path / "train_A.txt"), {"ignored": True}, resume_epoch=0)
  assert log.last is None and (tmp_path / "train_A.txt").read_text() == first_line()


def test_an_old_folder_evaluates_exports_and_resumes(tmp_path_factory, mnist):
  """Today's checkpoints under the fixture's config.json and log headers: glow-eval and
  glow-export read the old config.json, glow-train resumes the run and keeps the old header."""
  data_dir, problem = mnist
  logdir = tmp_path_factory.mktemp("old_run")
  config = helpers.tiny_config(logdir, data_dir, epochs=1)
  trainer = loop.Trainer(config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset)
  trainer.fit()
  shutil.copy(FIXTURE / "config.json", logdir / "config.json")
  for name in LOGS:
    records = (logdir / name).read_text().splitlines(keepends=True)[1:]
    assert [json.loads(r)["epoch"] for r in records] == [1]
    (logdir / name).write_text(first_line() + "".join(records))
  export_dir = logdir.parent / f"{logdir.name}_export" / "1"
  evaluated, exported, resumed = helpers.run_console_scripts(
    [
      ["glow-eval", f"--logdir={logdir}", f"--data_dir={data_dir}", "--nojudge"]
      + ["--n_train_reference=0"],
      ["glow-export", f"--logdir={logdir}", f"--export_dir={export_dir}"],
      [*COMMAND[:-1], "--epochs=2", f"--logdir={logdir}", f"--data_dir={data_dir}"],
    ],
  )
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  bits = json.loads((logdir / "eval.json").read_text())["metrics"]["bits_per_dim"]
  for side in "AB":
    logged = float(json.loads((logdir / f"test_{side}.txt").read_text().splitlines()[1])["bits_x"])
    assert abs(bits[side.lower()]["noise"]["mean"] - logged) < 0.01, (side, bits, logged)
  assert exported.returncode == 0, exported.stderr[-3000:]
  assert os.path.exists(export_dir / "saved_model.pb")
  assert "translate_a2b, translate_a2b_sample, translate_b2a" in exported.stdout
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"resumed from {logdir}/checkpoints/ckpt-10 at step 10" in resumed.stderr
  for name in LOGS:
    lines = (logdir / name).read_text().splitlines(keepends=True)
    assert lines[0] == first_line(), name  # the old header stays
    assert [json.loads(line)["epoch"] for line in lines[1:]] == [1, 2]
  # config.json is today's now: the new fields written, the run otherwise the same.
  again = json.loads((logdir / "config.json").read_text())["config"]
  assert again["model"]["noise_sigma"] == 0.0 and again["judge_samples"] == 0
  before = run_dir.read_config(str(FIXTURE)).config
  after = run_dir.read_config(str(logdir)).config
  assert after == dataclasses.replace(
    before, logdir=str(logdir), epochs=2, data=dataclasses.replace(before.data, data_dir=data_dir)
  )
