"""A binary that writes into a run folder (glow-eval's report) takes the folder's lock first and
is refused while glow-train holds it; one that writes elsewhere takes none. The holder is a real
process (run_lock.py loaded by its path)."""

import os
import signal
import subprocess
import sys

import pytest

from glow_tf2 import run_lock
from glow_tf2.cli import _run

HOLDER = """
import runpy, sys, time
lock = runpy.run_path(sys.argv[1])["hold"](sys.argv[2], "glow-train")
print("LOCKED", flush=True)
time.sleep(600)
"""


def _holder(logdir):
  """A process that holds `logdir`'s lock as glow-train does, once it has said so."""
  holder = subprocess.Popen(
    [sys.executable, "-c", HOLDER, run_lock.__file__, str(logdir)],
    stdout=subprocess.PIPE,
    text=True,
  )
  assert holder.stdout.readline().strip() == "LOCKED"
  return holder


def test_writing_into_a_held_run_folder_is_refused_and_writing_elsewhere_is_not(tmp_path):
  logdir, elsewhere = tmp_path / "run", tmp_path / "reports"
  holder = _holder(logdir)
  try:
    report = [str(logdir / "eval.json"), str(logdir / "eval.png")]
    with pytest.raises(run_lock.FolderInUseError, match=f"in use by pid {holder.pid} \\(glow-tr"):
      _run.hold_if_writing(str(logdir), report, "glow-eval")
    # A report outside the folder, or a path that only starts like it, needs no lock.
    outside = [str(elsewhere / "eval.json"), f"{logdir}_copy/eval.json", None]
    assert _run.hold_if_writing(str(logdir), outside, "glow-eval") is None
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
  finally:
    if holder.poll() is None:
      holder.kill()
      holder.wait()
  lock = _run.hold_if_writing(str(logdir), report, "glow-eval")
  try:
    assert lock.held and '"program": "glow-eval"' in (logdir / ".lock").read_text()
  finally:
    lock.release()


def test_glow_eval_refuses_a_held_run_folder_in_one_line_before_any_work(tmp_path):
  from absl import flags  # pylint: disable=g-import-not-at-top

  from glow_tf2.cli import eval as eval_main  # pylint: disable=g-import-not-at-top

  logdir = tmp_path / "run"
  holder = _holder(logdir)
  try:
    fv = flags.FlagValues()
    eval_main.define_flags(fv)
    fv(["glow-eval", f"--logdir={logdir}"])
    # The folder holds no run: the refusal comes first, before the run is read.
    with pytest.raises(SystemExit, match=f"^glow-eval: .*in use by pid {holder.pid}"):
      eval_main.eval_from_flags(fv)
  finally:
    holder.kill()
    holder.wait()


def test_glow_eval_refuses_a_file_as_its_run_folder(tmp_path):
  from absl import flags  # pylint: disable=g-import-not-at-top

  from glow_tf2.cli import eval as eval_main  # pylint: disable=g-import-not-at-top

  not_a_folder = tmp_path / "run.txt"
  not_a_folder.write_text("hello")
  fv = flags.FlagValues()
  eval_main.define_flags(fv)
  fv(["glow-eval", f"--logdir={not_a_folder}"])
  with pytest.raises(SystemExit) as exit_info:
    eval_main.eval_from_flags(fv)
  assert str(exit_info.value) == f"glow-eval: --logdir={not_a_folder}: a file, not a run folder"
