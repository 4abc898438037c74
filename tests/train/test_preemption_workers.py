"""SIGTERM to one worker of a two-worker run (MultiWorkerMirroredStrategy, two glow-train
processes on 127.0.0.1): both stop after the same step, saved once by the chief, both exit 143
with one line; only the chief holds the run folder's lock. (The same signal resumed and compared
bitwise: `python -m glow_tf2_tools.kill_resume --signal=TERM --workers=2`, docs/train.md.)"""

import json
import re
import signal

from glow_tf2_tools import kill_resume
from tests.helpers import mnist_dir
from tests.helpers import tiny_flags

# 60 steps, no periodic saves: the checkpoint of the step the workers stop after is the signal's.
FLAGS = ("--n_train=960", "--epochs=1", "--log_steps=1", "--checkpoint_steps=0", "--n_sample=4")


def test_sigterm_to_one_worker_stops_both_after_the_same_saved_step(tmp_path_factory, tmp_path):
  data_dir = mnist_dir(tmp_path_factory)
  logdir = tmp_path / "run"
  started = kill_resume.start(tiny_flags(logdir, data_dir, *FLAGS), 2, str(tmp_path / "stderr"))
  (chief, chief_err), (worker, _) = started
  try:
    assert kill_resume.wait_for_step(chief_err, 3, chief), open(chief_err).read()[-3000:]
    lock = json.loads((logdir / ".lock").read_text())
    worker.send_signal(signal.SIGTERM)  # the non-chief: only the agreement stops the chief
  finally:
    ended = kill_resume.finish(started)
  assert lock["pid"] == chief.pid  # the other worker takes no lock: they would refuse each other
  assert ended.statuses == [143, 143], [text[-2000:] for text in ended.stderr]
  step, problem = kill_resume.check_stop(ended, signal.SIGTERM, str(logdir))
  assert not problem and step >= 3, problem
  checkpoint = re.escape(str(logdir / "checkpoints" / f"ckpt-{step}"))
  resume = "; rerun the same command to resume"
  chief_line, worker_line = ended.last_lines()
  assert re.fullmatch(
    rf"glow-train: stopped by SIGTERM to another worker after step {step} of 60: checkpoint "
    rf"{checkpoint}{resume}",
    chief_line,
  ), chief_line
  assert re.fullmatch(
    rf"glow-train: stopped by SIGTERM after step {step} of 60: checkpoint {checkpoint}{resume}",
    worker_line,
  ), worker_line
  assert not (logdir / ".worker_1").exists()  # the other worker's scratch save is gone
  assert all("Traceback" not in text for text in ended.stderr)
