"""A full disk while saving stops glow-train with one line naming the folder, the older
checkpoints intact and what the failed save wrote removed.

The full disk is a patched `tf.train.CheckpointManager.save` that writes part of its temporary
files and raises what TensorFlow raises for ENOSPC, in a real glow-train process."""

import errno
import os
import re
import sys

import pytest
import tensorflow as tf

from glow_tf2 import run_dir
from tests.helpers import mnist_dir
from tests.helpers import run_python
from tests.helpers import tiny_flags

# glow-train whose third checkpoint save finds the disk full (after the saves of steps 3 and 6).
FULL_AT_THIRD_SAVE = """
import os, sys
import tensorflow as tf
real, calls = tf.train.CheckpointManager.save, []
def save(self, checkpoint_number=None, **kwargs):
  calls.append(checkpoint_number)
  if len(calls) == 3:
    temp = os.path.join(self.directory, f"ckpt-{checkpoint_number}_temp")
    os.makedirs(temp)
    with open(os.path.join(temp, "part-00000-of-00001.data-00000-of-00001"), "w") as f:
      f.write("the part written before the disk filled up")
    raise tf.errors.ResourceExhaustedError(None, None, f"{temp}/part-00000; No space left on device")
  return real(self, checkpoint_number=checkpoint_number, **kwargs)
tf.train.CheckpointManager.save = save
from glow_tf2.cli import train
sys.argv = sys.argv[1:]
train.run()
"""


def test_a_full_disk_is_one_line_naming_the_folder_and_the_older_checkpoints_stay(
  tmp_path_factory, tmp_path
):
  data_dir = mnist_dir(tmp_path_factory)
  logdir = tmp_path / "run"
  flags = ("--train_steps=20", "--checkpoint_steps=3", "--checkpoint_secs=0", "--n_sample=4")
  argv = ["glow-train", *tiny_flags(logdir, data_dir, *flags, "--epochs_full_sample=1000")[3:]]
  result = run_python([sys.executable, "-c", FULL_AT_THIRD_SAVE, *argv])
  assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  folder = logdir / "checkpoints"
  line = result.stderr.strip().splitlines()[-1]
  assert re.fullmatch(
    rf"glow-train: cannot save the checkpoint of step 9 in {re.escape(str(folder))}: \S+; No "
    rf"space left on device; the older checkpoints there are intact, the latest is "
    rf"{re.escape(str(folder))}/ckpt-6 \(a rerun resumes from it\); free some space and rerun",
    line,
  ), line
  state = tf.train.get_checkpoint_state(str(folder))
  assert list(state.all_model_checkpoint_paths) == [str(folder / "ckpt-3"), str(folder / "ckpt-6")]
  assert run_dir.newest_readable(str(folder)) == str(folder / "ckpt-6")
  assert run_dir.unreadable(str(folder / "ckpt-3")) is None
  assert sorted(os.listdir(folder)) == [
    "checkpoint",
    *(f"ckpt-{s}.{kind}" for s in (3, 6) for kind in ("data-00000-of-00001", "index")),
  ]  # the failed save's temporary files are gone


class FullManager:
  """A CheckpointManager stand-in whose saves raise `error`, after leaving files of the save."""

  def __init__(self, directory, error):
    self.directory, self.error = str(directory), error

  def save(self, checkpoint_number):
    os.makedirs(os.path.join(self.directory, f"ckpt-{checkpoint_number}_temp"))
    with open(os.path.join(self.directory, f"ckpt-{checkpoint_number}.index"), "w") as f:
      f.write("torn")
    raise self.error


def test_save_checkpoint_turns_only_a_full_disk_into_no_space_error(tmp_path):
  root = tf.train.Checkpoint(w=tf.Variable([1.0, 2.0]))
  manager = tf.train.CheckpointManager(root, str(tmp_path), max_to_keep=5)
  assert run_dir.save_checkpoint(manager, 4) == str(tmp_path / "ckpt-4")
  for error in (OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EDQUOT, "quota")):
    with pytest.raises(run_dir.NoSpaceError, match=r"step 5 in .*: \[Errno \d+\] "):
      run_dir.save_checkpoint(FullManager(tmp_path, error), 5)
    assert sorted(os.listdir(tmp_path)) == [
      "checkpoint",
      "ckpt-4.data-00000-of-00001",
      "ckpt-4.index",
    ]
  # Any other failure is not a full disk: it goes up as it was.
  with pytest.raises(PermissionError):
    run_dir.save_checkpoint(FullManager(tmp_path, PermissionError(errno.EACCES, "denied")), 6)
