"""Never lose work, never keep a broken model: exact resume after SIGKILL (weights and epoch
logs), de-duplicated JSON logs, nothing non-finite saved (variables, and outputs of finite but
diverging weights). The trainings are glow-train subprocesses of a tiny model, or Trainers in
this process where a step is to be poisoned or interrupted."""

import json
import os
import random
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import loop as trainer_lib
from glow_tf2.train import outputs
from glow_tf2_tools import kill_resume
from tests.helpers import SUBPROCESS_ENV
from tests.helpers import mnist_dir
from tests.helpers import run_console_scripts
from tests.helpers import tiny_config
from tests.helpers import tiny_flags

STEPS = 30  # 3 epochs of 10 steps
RESUME_FLAGS = (
  f"--train_steps={STEPS}",
  "--checkpoint_steps=3",
  "--checkpoint_secs=0",
  "--keep_checkpoints=100",
  "--dal=1",  # augmentation too must resume where it was
  "--epochs_full_sample=1000",
  "--n_sample=4",
)


def checkpoint_tensors(prefix: str) -> dict[str, np.ndarray]:
  reader = tf.train.load_checkpoint(prefix)
  return {
    name: np.asarray(reader.get_tensor(name))  # the epoch's running means: a bytes scalar
    for name in reader.get_variable_to_shape_map()
    if not name.startswith("save_counter") and "OBJECT_GRAPH" not in name
  }


def steps_saved(logdir) -> list[int]:
  state = tf.train.get_checkpoint_state(str(logdir / "checkpoints"))
  paths = state.all_model_checkpoint_paths if state else []
  return sorted(int(re.search(r"ckpt-(\d+)$", p).group(1)) for p in paths)


def log_records(logdir, name: str) -> list[dict]:
  """A JSON log's epoch records without their clocks (wall and CPU seconds differ run to run)."""
  return kill_resume.log_records(str(logdir / name))


def make_trainer(config):
  data = config.data
  problem = problems.get_problem(data.problem, data_dir=data.data_dir, channels=data.channels)
  return trainer_lib.Trainer(
    config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset
  )


class Interrupted(Exception):
  """Stands for a kill between two checkpoints of an in-process run."""


def interrupt_after(trainer, steps: int) -> None:
  """Makes `trainer` stop (raise Interrupted) when asked for step `steps` + 1 of this process."""
  real_step, calls = trainer.steps.train_step, []

  def step(iterator):
    if len(calls) == steps:
      raise Interrupted
    calls.append(1)
    return real_step(iterator)

  trainer.steps.train_step = step


def test_sigkill_at_a_random_step_then_resume_reaches_the_uninterrupted_weights(
  tmp_path_factory, tmp_path
):
  data_dir = mnist_dir(tmp_path_factory)
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  command = tiny_flags(killed, data_dir, *RESUME_FLAGS)
  proc = subprocess.Popen(
    command, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
  )
  delay = random.Random().uniform(0.0, 1.5)
  index = killed / "checkpoints" / "checkpoint"
  deadline = time.time() + 300
  try:
    while time.time() < deadline and proc.poll() is None and not index.exists():
      time.sleep(0.02)
    time.sleep(delay)  # a random step after the first checkpoint
    assert proc.poll() is None, "the run ended before the kill; " + proc.stderr.read()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == -signal.SIGKILL
  killed_at = steps_saved(killed)[-1]
  assert 3 <= killed_at < STEPS, (killed_at, delay)

  # After the kill (the uninterrupted run would only slow the one that is killed): the
  # uninterrupted run, the rerun, then a rerun to 10 steps more than the run was started with.
  done, rerun, longer = run_console_scripts(
    [
      ["glow-train", *tiny_flags(straight, data_dir, *RESUME_FLAGS)[3:]],
      ["glow-train", *command[3:]],
      ["glow-train", *command[3:], f"--train_steps={STEPS + 10}", "--epochs=4"],
    ],
  )
  assert done.returncode == 0, done.stderr[-3000:]
  # Checkpoints every 3 steps and at each epoch end (10, 20, 30).
  assert steps_saved(straight) == [3, 6, 9, 10, 12, 15, 18, 20, 21, 24, 27, 30]
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  ckpts = killed / "checkpoints"
  assert f"resumed from {ckpts}/ckpt-{killed_at} at step {killed_at}" in rerun.stderr
  assert longer.returncode == 0, longer.stderr[-3000:]
  assert f"resumed from {ckpts}/ckpt-{STEPS} at step {STEPS}" in longer.stderr
  assert steps_saved(killed)[-1] == STEPS + 10
  a = checkpoint_tensors(str(straight / "checkpoints" / f"ckpt-{STEPS}"))
  b = checkpoint_tensors(str(killed / "checkpoints" / f"ckpt-{STEPS}"))
  assert set(a) == set(b) and len(a) > 20
  moved = checkpoint_tensors(str(straight / "checkpoints" / "ckpt-3"))
  # Bitwise on one device: same data order, augmentation, noise, optimizer state and EMA.
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=f"{name} (killed at {killed_at})")
  assert any(not np.array_equal(a[n], moved[n]) for n in a)  # the run did train after step 3
  # One record per epoch in every log, whatever the kill tore, and the uninterrupted run's
  # records: an epoch the kill cut logs the mean over all its steps, not only the resumed ones.
  # (After the longer rerun: epoch 4 is the one it added.)
  for name in ("train_A.txt", "train_B.txt", "test_A.txt", "test_B.txt"):
    with open(killed / name) as f:
      assert "problem" in json.loads(f.readline()), name
    records = log_records(killed, name)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4], name
    assert records[:3] == log_records(straight, name), (name, killed_at)


def test_json_log_keeps_one_record_per_epoch_of_a_torn_duplicated_file(tmp_path):
  path = tmp_path / "train_A.txt"
  header = {"problem": "mnist", "lr": 0.001}
  lines = [
    json.dumps(header),
    json.dumps({"epoch": 1, "loss": "5.0000"}),
    json.dumps({"epoch": 2, "loss": "4.0000"}),
    json.dumps({"epoch": 2, "loss": "3.9000"}),  # epoch 2 redone after a kill
    json.dumps({"epoch": 3, "loss": "3.0000"}),  # logged, then killed before its checkpoint
  ]
  path.write_text("\n".join(lines) + '\n{"epoch": 4, "lo')  # torn by the kill
  log = outputs.JsonLog(str(path), {"problem": "other"}, resume_epoch=2)
  kept = [json.loads(line) for line in path.read_text().splitlines()]
  assert kept == [header, {"epoch": 1, "loss": "5.0000"}, {"epoch": 2, "loss": "3.9000"}]
  assert log.last == {"epoch": 2, "loss": "3.9000"}
  log.write({"epoch": 3, "loss": "2.5000"})
  assert [json.loads(x) for x in path.read_text().splitlines()][-1] == {
    "epoch": 3,
    "loss": "2.5000",
  }
  # A missing file, or one holding only garbage, starts with the given hyperparameters.
  other = tmp_path / "test_A.txt"
  other.write_text("not json\n")
  log = outputs.JsonLog(str(other), header, resume_epoch=5)
  assert other.read_text() == json.dumps(header) + "\n" and log.last is None


def test_non_finite_run_saves_nothing_and_names_the_real_last_good_checkpoint(
  tmp_path_factory, tmp_path
):
  data_dir = mnist_dir(tmp_path_factory)
  logdir, fresh = tmp_path / "run", tmp_path / "fresh"
  quick = ("--epochs_full_sample=1000", "--n_sample=4", "--checkpoint_secs=0")

  def argv(folder, *extra):
    return ["glow-train", *tiny_flags(folder, data_dir, *quick, *extra)[3:]]

  # In this order, a process each: a good run of one epoch; two that diverge at lr=1e30, without
  # and with a save after every step; one epoch of one step at lr=1e30 in a fresh folder.
  diverge = ("--train_steps=20", "--lr=1e30")
  good, *bads, bad_fresh = run_console_scripts(
    [
      argv(logdir, "--train_steps=10"),
      argv(logdir, *diverge),
      argv(logdir, *diverge, "--checkpoint_steps=1"),
      argv(fresh, "--n_train=16", "--train_steps=3", "--lr=1e30"),
    ],
  )
  assert good.returncode == 0, good.stderr[-3000:]
  # Without mid-epoch saves nothing is saved after ckpt-10 (the second run resumes from it).
  # With a save after every step, a step whose update is still finite (the loss is checked at
  # the next step) may be saved, but never a non-finite one; the message names the latest.
  assert f"resumed from {logdir}/checkpoints/ckpt-10 at step 10" in bads[1].stderr
  assert steps_saved(logdir) in ([10], [10, 11])
  for bad, latest in zip(bads, (10, steps_saved(logdir)[-1])):
    assert bad.returncode == 1
    message = bad.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
      r"glow-train: non-finite ((weights|outputs) of model [AB]|loss|evaluation) at step "
      r"1[12]\b.*"
      rf"the last good checkpoint is {re.escape(str(logdir))}/checkpoints/ckpt-{latest} "
      r"\(a rerun resumes from it\)",
      message,
    ), message
  for step in steps_saved(logdir):
    for name, value in checkpoint_tensors(str(logdir / "checkpoints" / f"ckpt-{step}")).items():
      if value.dtype.kind == "f":
        assert np.all(np.isfinite(value)), (step, name)

  # One epoch of one step: the step's loss is finite, the weights it leaves are not. The
  # evaluation (or the check before the save) stops the run with no checkpoint written.
  assert bad_fresh.returncode == 1
  message = bad_fresh.stderr.strip().splitlines()[-1]
  assert re.fullmatch(
    r"glow-train: non-finite (evaluation|(weights|outputs) of model [AB]) at step 1\b.*no "
    r"checkpoint "
    r"was saved in .*/checkpoints \(a rerun starts afresh\)",
    message,
  ), message
  assert steps_saved(fresh) == [] and not os.path.exists(fresh / "best_A")


def test_finite_but_diverging_weights_are_not_saved_mid_epoch(tmp_path_factory, tmp_path):
  # Checkpoints every 3 steps; after step 6 an ActNorm scale of model A becomes 1e30: finite
  # (the variable check passes), but exp(3e30) is not. The mid-epoch save at step 6 must run
  # the forward check, refuse, and name ckpt-3, which stays the latest.
  config = tiny_config(
    tmp_path,
    mnist_dir(tmp_path_factory),
    checkpoint_steps=3,
    checkpoint_secs=0.0,
    epochs_full_sample=1000,
    n_sample=4,
  )
  trainer = make_trainer(config)
  real_step, calls = trainer.steps.train_step, []

  def poisoned(iterator):
    metrics = real_step(iterator)
    calls.append(1)
    if len(calls) == 6:
      logs = next(v for v in trainer.sides[0].model.trainable_variables if "logs" in v.name)
      logs.assign(tf.fill(logs.shape, 1e30))
    return metrics

  trainer.steps.train_step = poisoned
  latest = tmp_path / "checkpoints" / "ckpt-3"
  with pytest.raises(trainer_lib.NonFiniteLossError) as error:
    trainer.fit()
  assert re.fullmatch(
    r"non-finite outputs of model A at step 6 \(training weights: (bits_x, eps|bits_x|eps) of 8 "
    rf"fixed test images\): not saved, training stopped, the last good checkpoint is "
    rf"{re.escape(str(latest))} \(a rerun resumes from it\)",
    str(error.value),
  ), str(error.value)
  assert len(calls) == 6 and steps_saved(tmp_path) == [3]
  trainer.check_finite_variables(6)  # the weights themselves are finite
  # ckpt-3 is intact: finite weights (best_loss is still inf: nothing validated yet).
  values = checkpoint_tensors(str(latest))
  weights = [v for n, v in values.items() if v.dtype.kind == "f" and not n.startswith("best_loss")]
  assert len(weights) > 20 and all(np.all(np.isfinite(v)) for v in weights)


def test_epoch_logs_are_exact_across_a_kill_and_a_stop_inside_an_epoch(tmp_path_factory, tmp_path):
  # One uninterrupted run of 2 epochs (10 steps each) against one stopped twice inside epoch 2:
  # interrupted after step 14 (ckpt-12 the latest: steps 13, 14 redone), then run to
  # --train_steps=15 (which logs a partial epoch 2 and keeps its sums in ckpt-15), then to 20.
  data_dir = mnist_dir(tmp_path_factory)
  quick = dict(
    checkpoint_steps=3,
    checkpoint_secs=0.0,
    keep_checkpoints=100,
    epochs_full_sample=1000,
    n_sample=4,
  )
  straight, stopped = tmp_path / "straight", tmp_path / "stopped"
  make_trainer(tiny_config(straight, data_dir, train_steps=20, **quick)).fit()

  trainer = make_trainer(tiny_config(stopped, data_dir, train_steps=20, **quick))
  interrupt_after(trainer, 14)
  with pytest.raises(Interrupted):
    trainer.fit()
  assert steps_saved(stopped) == [3, 6, 9, 10, 12]
  make_trainer(tiny_config(stopped, data_dir, train_steps=15, **quick)).fit()
  partial = log_records(stopped, "train_A.txt")[-1]
  assert partial["epoch"] == 2 and partial["n_images"] == 15 * 16
  make_trainer(tiny_config(stopped, data_dir, train_steps=20, **quick)).fit()

  for name in ("train_A.txt", "train_B.txt", "test_A.txt", "test_B.txt"):
    records = log_records(stopped, name)
    assert [r["epoch"] for r in records] == [1, 2], name
    assert records == log_records(straight, name), name
  # The stop at 15 had logged a real partial mean; the rerun replaced it with the whole epoch's.
  assert partial["loss"] != log_records(straight, "train_A.txt")[1]["loss"]
  # The weights too, bit for bit; train_time still counts the training seconds before a stop.
  a = checkpoint_tensors(str(straight / "checkpoints" / "ckpt-20"))
  b = checkpoint_tensors(str(stopped / "checkpoints" / "ckpt-20"))
  # (Not the best-model files' save counters: the stop at step 15 validated and saved once more.)
  weights = [n for n in a if n.startswith(("model_", "optimizer_")) and "save_counter" not in n]
  assert len(weights) > 20
  for name in weights:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  with open(stopped / "train_A.txt") as f:
    times = [json.loads(line)["train_time"] for line in f.readlines()[1:]]
  assert times[0] <= times[1]
