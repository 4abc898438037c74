"""Never lose work, never keep a broken model: exact resume after SIGKILL, de-duplicated JSON
logs, nothing non-finite saved. The trainings are glow-train subprocesses of a tiny model."""

import json
import os
import random
import re
import signal
import subprocess
import time

import numpy as np
import tensorflow as tf

from glow_tf2.train import outputs
from tests.helpers import SUBPROCESS_ENV
from tests.helpers import mnist_dir
from tests.helpers import run_python
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
    name: reader.get_tensor(name)
    for name in reader.get_variable_to_shape_map()
    if not name.startswith("save_counter") and "OBJECT_GRAPH" not in name
  }


def steps_saved(logdir) -> list[int]:
  state = tf.train.get_checkpoint_state(str(logdir / "checkpoints"))
  paths = state.all_model_checkpoint_paths if state else []
  return sorted(int(re.search(r"ckpt-(\d+)$", p).group(1)) for p in paths)


def test_sigkill_at_a_random_step_then_resume_reaches_the_uninterrupted_weights(
  tmp_path_factory, tmp_path
):
  data_dir = mnist_dir(tmp_path_factory)
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  done = run_python(tiny_flags(straight, data_dir, *RESUME_FLAGS))
  assert done.returncode == 0, done.stderr[-3000:]
  # Checkpoints every 3 steps and at each epoch end (10, 20, 30).
  assert steps_saved(straight) == [3, 6, 9, 10, 12, 15, 18, 20, 21, 24, 27, 30]

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

  rerun = run_python(command)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f"at step {killed_at}" in rerun.stderr
  a = checkpoint_tensors(str(straight / "checkpoints" / f"ckpt-{STEPS}"))
  b = checkpoint_tensors(str(killed / "checkpoints" / f"ckpt-{STEPS}"))
  assert set(a) == set(b) and len(a) > 20
  moved = checkpoint_tensors(str(straight / "checkpoints" / "ckpt-3"))
  # Bitwise on one device: same data order, augmentation, noise, optimizer state and EMA.
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=f"{name} (killed at {killed_at})")
  assert any(not np.array_equal(a[n], moved[n]) for n in a)  # the run did train after step 3
  # One record per epoch in every log, whatever the kill tore.
  for name in ("train_A.txt", "test_B.txt"):
    with open(killed / name) as f:
      lines = [json.loads(line) for line in f]
    assert "problem" in lines[0] and [r["epoch"] for r in lines[1:]] == [1, 2, 3], name


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
  logdir = tmp_path / "run"
  quick = ("--epochs_full_sample=1000", "--n_sample=4", "--checkpoint_secs=0")
  good = run_python(tiny_flags(logdir, data_dir, "--train_steps=10", *quick))
  assert good.returncode == 0, good.stderr[-3000:]
  assert steps_saved(logdir) == [10]
  # Without mid-epoch saves nothing is saved after ckpt-10. With a save after every step, a
  # step whose update is still finite (the loss is checked at the next step) may be saved,
  # but never a non-finite one; the message names whatever is latest.
  for extra, saved in (((), [[10]]), (("--checkpoint_steps=1",), [[10], [10, 11]])):
    bad = run_python(tiny_flags(logdir, data_dir, "--train_steps=20", "--lr=1e30", *quick, *extra))
    assert bad.returncode == 1
    message = bad.stderr.strip().splitlines()[-1]
    assert steps_saved(logdir) in saved
    latest = steps_saved(logdir)[-1]
    assert re.fullmatch(
      r"glow-train: non-finite (weights of model [AB]|loss|evaluation) at step 1[12]\b.*"
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
  fresh = tmp_path / "fresh"
  bad = run_python(
    tiny_flags(fresh, data_dir, "--n_train=16", "--train_steps=3", "--lr=1e30", *quick)
  )
  assert bad.returncode == 1
  message = bad.stderr.strip().splitlines()[-1]
  assert re.fullmatch(
    r"glow-train: non-finite (evaluation|weights of model [AB]) at step 1\b.*no checkpoint "
    r"was saved in .*/checkpoints \(a rerun starts afresh\)",
    message,
  ), message
  assert steps_saved(fresh) == [] and not os.path.exists(fresh / "best_A")
