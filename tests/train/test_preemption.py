"""SIGTERM and SIGINT stop glow-train after the step in flight, saved: exit 143 / 130, one line
naming the step and its checkpoint, and a rerun ending bitwise as the uninterrupted run. And
glow-train holds its run folder's lock: a second writer is refused naming its pid.

One run folder is stopped twice with real signals (SIGTERM, then SIGINT to its rerun), each a
fresh glow-train process, then run to the end; that run, the uninterrupted one it is compared
with and the refusals are processes forked from the tests' warm process
(`helpers.run_console_scripts`). The comparisons are tools/kill_resume.py's.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2 import run_lock
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import loop
from glow_tf2.train import preemption
from glow_tf2_tools import kill_resume
from tests.helpers import mnist_dir
from tests.helpers import run_console_scripts
from tests.helpers import tiny_config
from tests.helpers import tiny_flags

STEPS = 60  # one epoch of 960 images in batches of 16
# No periodic checkpoints: the checkpoint of the step a run stopped at can only be the signal's.
FLAGS = (
  "--n_train=960",
  "--epochs=1",
  "--log_steps=1",
  "--checkpoint_steps=0",
  "--checkpoint_secs=0",
  "--keep_checkpoints=100",
  "--dal=1",  # augmentation too must resume where it was
  "--epochs_full_sample=1000",
  "--n_sample=4",
)
STOPPED = r"glow-train: stopped by {} after step (\d+) of 60: checkpoint {}/checkpoints/ckpt-\1; rerun the same command to resume"


def wait_for_step(path: str, step: int, proc: subprocess.Popen) -> None:
  """Until the process's stderr file logs a step >= `step` (it then holds the step's line)."""
  if not kill_resume.wait_for_step(path, step, proc):
    raise AssertionError(f"no step {step} before the end; {open(path).read()[-2000:]}")


def last_line(text: str) -> str:
  return text.strip().splitlines()[-1]


def stop_step(ended: kill_resume.Ended, name: str, logdir) -> int:
  """The step a run stopped by signal `name` names in its last line (0: not that line)."""
  match = re.fullmatch(STOPPED.format(name, re.escape(str(logdir))), last_line(ended.stderr[0]))
  return int(match.group(1)) if match else 0


def event_steps(logdir, tag: str) -> list[int]:
  steps = []
  for name in sorted(os.listdir(logdir)):
    if name.startswith("events.out.tfevents"):
      for event in tf.compat.v1.train.summary_iterator(os.path.join(logdir, name)):
        steps += [event.step for v in event.summary.value if v.tag == tag]
  return steps


# Holds the lock of argv[2] (run_lock.py loaded by its path, argv[1]) until killed.
HOLDER = """
import runpy, sys, time
lock = runpy.run_path(sys.argv[1])["hold"](sys.argv[2], "holder")
print("LOCKED", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  data_dir = mnist_dir(tmp_path_factory)
  root = tmp_path_factory.mktemp("preemption")
  stopped, straight = root / "stopped", root / "straight"
  command = tiny_flags(stopped, data_dir, *FLAGS)
  out = {"stopped": stopped, "straight": straight}

  # SIGTERM after step 3: while it trains, glow-train holds the folder's lock.
  ((proc, err),) = kill_resume.start(command, 1, str(root / "stderr"))
  try:
    wait_for_step(err, 3, proc)
    out["lock_record"] = json.loads((stopped / ".lock").read_text())
    try:
      run_lock.hold(str(stopped), "test")
      out["refused"] = ""
    except run_lock.FolderInUseError as e:
      out["refused"] = str(e)
    out["term_pid"] = proc.pid
    os.kill(proc.pid, signal.SIGTERM)
  finally:
    out["term"] = kill_resume.finish([(proc, err)])
  out["term_events"] = event_steps(stopped, "train/loss_a")
  out["term_checkpoints"] = kill_resume.latest_step(str(stopped))

  # The rerun, SIGINT three steps after the resume.
  ((proc, err),) = kill_resume.start(command, 1, str(root / "stderr"))
  try:
    first = stop_step(out["term"], "SIGTERM", stopped)
    assert first, out["term"].stderr[0][-3000:]
    wait_for_step(err, first + 3, proc)
    os.kill(proc.pid, signal.SIGINT)
  finally:
    out["int"] = kill_resume.finish([(proc, err)])

  # A folder held by another process, and a --logdir that is a file.
  held, a_file = root / "held", root / "a_file"
  a_file.write_text("not a run folder")
  holder = subprocess.Popen(
    [sys.executable, "-c", HOLDER, run_lock.__file__, str(held)],
    stdout=subprocess.PIPE,
    text=True,
  )
  try:
    assert holder.stdout.readline().strip() == "LOCKED"
    out["holder_pid"] = holder.pid
    out["held"], out["a_file"] = run_console_scripts(
      [
        ["glow-train", *tiny_flags(held, data_dir, *FLAGS)[3:]],
        ["glow-train", *tiny_flags(a_file, data_dir, *FLAGS)[3:]],
      ],
    )
  finally:
    holder.kill()
    holder.wait()
  # The uninterrupted run and the rerun to the end, forked (tests/train/test_resume.py compares
  # forked and fresh processes bitwise too).
  out["straight_run"], out["rerun"] = run_console_scripts(
    [["glow-train", *tiny_flags(straight, data_dir, *FLAGS)[3:]], ["glow-train", *command[3:]]]
  )
  return out


def test_sigterm_saves_the_step_in_flight_and_exits_143_with_one_line(runs):
  stopped, term = runs["stopped"], runs["term"]
  assert term.statuses == [143], term.stderr[0][-3000:]
  assert "Traceback" not in term.stderr[0]
  match = re.fullmatch(
    STOPPED.format("SIGTERM", re.escape(str(stopped))), last_line(term.stderr[0])
  )
  assert match, last_line(term.stderr[0])
  step = int(match.group(1))
  assert 3 <= step < STEPS
  # The signal's checkpoint is the latest; it holds the epoch's running sums, as a step save.
  assert runs["term_checkpoints"] == step
  reader = tf.train.load_checkpoint(str(stopped / "checkpoints" / f"ckpt-{step}"))
  sums = json.loads(reader.get_tensor("epoch_progress/.ATTRIBUTES/VARIABLE_VALUE"))
  assert sums["step"] == step and sums["epoch"]["count"] == step
  assert f"resumed from {stopped}/checkpoints/ckpt-{step} at step {step}" in runs["int"].stderr[0]
  # The TensorBoard events were flushed up to the last step trained (--log_steps=1).
  assert max(runs["term_events"]) == step


def test_sigint_exits_130_with_one_line_after_a_later_step(runs):
  stopped, ended = runs["stopped"], runs["int"]
  assert ended.statuses == [130], ended.stderr[0][-3000:]
  match = re.fullmatch(
    STOPPED.format("SIGINT", re.escape(str(stopped))), last_line(ended.stderr[0])
  )
  assert match, last_line(ended.stderr[0])
  first = stop_step(runs["term"], "SIGTERM", stopped)
  assert int(match.group(1)) >= first + 3


def test_the_rerun_ends_bitwise_as_the_uninterrupted_run(runs):
  stopped, straight = runs["stopped"], runs["straight"]
  assert runs["straight_run"].returncode == 0, runs["straight_run"].stderr[-3000:]
  rerun = runs["rerun"]
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  last = stop_step(runs["int"], "SIGINT", stopped)
  assert last
  assert f"resumed from {stopped}/checkpoints/ckpt-{last} at step {last}" in rerun.stderr
  final = f"checkpoints/ckpt-{STEPS}"
  diffs = kill_resume.weight_diffs(str(straight / final), str(stopped / final))
  assert len(diffs) > 20 and set(diffs.values()) == {0.0}, {k: v for k, v in diffs.items() if v}
  # The epoch's record covers all its steps, across two stops (the sums were in the checkpoints).
  assert kill_resume.logs_equal(str(straight), str(stopped))
  for name in ("train_A.txt", "train_B.txt", "test_A.txt", "test_B.txt"):
    records = kill_resume.log_records(str(stopped / name))
    assert [r["epoch"] for r in records] == [1] and records[0]["n_images"] == STEPS * 16, name
  # A variable that trains did train, so the equality above is not of two untouched models.
  reader = tf.train.load_checkpoint(str(straight / final))
  assert any("optimizer" in n for n in diffs)
  assert np.any(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == STEPS)


def test_glow_train_holds_its_folder_and_a_second_writer_is_refused_naming_the_pid(runs):
  # While the first run trained: its pid in the lock file, another writer refused naming it.
  assert runs["lock_record"]["pid"] == runs["term_pid"]
  assert runs["lock_record"]["program"] == "glow-train"
  assert runs["refused"].startswith(f"{runs['stopped']} is in use by pid {runs['term_pid']} ")
  # glow-train refused by another holder: exit 1 and one line, before touching the folder.
  held = runs["held"]
  assert held.returncode == 1 and "Traceback" not in held.stderr, held.stderr[-3000:]
  assert re.fullmatch(
    rf"glow-train: \S+/held is in use by pid {runs['holder_pid']} \(holder, since [^)]+\): one "
    r"writer at a time; wait for it to end or use another folder",
    last_line(held.stderr),
  ), last_line(held.stderr)
  assert os.listdir(runs["stopped"].parent / "held") == [".lock"]


def test_a_logdir_that_is_a_file_is_one_line(runs):
  result = runs["a_file"]
  assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  assert re.fullmatch(
    r"glow-train: --logdir=\S+/a_file: a file, not a folder", last_line(result.stderr)
  ), last_line(result.stderr)
  assert (runs["stopped"].parent / "a_file").read_text() == "not a run folder"


def test_in_process_the_step_in_flight_finishes_and_the_handlers_are_put_back(
  tmp_path_factory, tmp_path
):
  data_dir = mnist_dir(tmp_path_factory)
  config = tiny_config(tmp_path, data_dir, train_steps=20, checkpoint_steps=0, n_sample=4)
  problem = problems.get_problem("mnist", data_dir=data_dir, channels=1)
  trainer = loop.Trainer(config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset)
  real_step, calls = trainer.steps.train_step, []

  def step(iterator):
    calls.append(1)
    if len(calls) == 4:
      os.kill(os.getpid(), signal.SIGINT)  # while step 4 is on its way
    return real_step(iterator)

  trainer.steps.train_step = step
  before = {s: signal.getsignal(s) for s in preemption.SIGNALS}
  with pytest.raises(preemption.Preempted) as stopped:
    trainer.fit()
  checkpoint = str(tmp_path / "checkpoints" / "ckpt-4")
  assert (stopped.value.step, stopped.value.exit_status) == (4, 130) and len(calls) == 4
  assert (
    stopped.value.checkpoint
    == checkpoint
    == tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  )
  assert str(stopped.value) == (
    f"stopped by SIGINT after step 4 of 20: checkpoint {checkpoint}; rerun the same command to "
    "resume"
  )
  assert {s: signal.getsignal(s) for s in preemption.SIGNALS} == before


def test_a_second_signal_kills_at_once():
  # In a forked child (its own signals): the first SIGTERM is caught, the second kills.
  read, write = os.pipe()
  pid = os.fork()
  if pid == 0:  # the child never returns into pytest
    try:
      with preemption.Watch(strategy=None) as watch:  # no TensorFlow in a forked child
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the handler runs
        os.write(write, str(watch.received).encode())
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    finally:
      os._exit(0)
  os.close(write)
  _, status = os.waitpid(pid, 0)
  caught = os.read(read, 16).decode()
  os.close(read)
  assert caught == str(int(signal.SIGTERM))
  assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
