"""Loading a trained pair: `load_pair` of a glow-train run folder or of an exported SavedModel."""

import dataclasses
import os

import tensorflow as tf

from glow_tf2 import run_dir
from glow_tf2.input import problems
from glow_tf2.pair.image_pair import ImagePair
from glow_tf2.pair.saved_pair import SavedPair


def read_run(logdir: str, data_dir: str | None = None) -> run_dir.RunConfig:
  """The run folder's configuration (`run_dir.read_config`), resolved: a folder written before
  config.json existed gets its image shape and classes from its data (`problems.for_data`).

  Args:
    logdir: the run's folder (glow-train's --logdir).
    data_dir: where the run's data is now, if it moved.
  """
  found = run_dir.read_config(logdir, data_dir=data_dir)
  if found.resolved:
    return found
  config = found.config.resolve(problems.for_data(found.config.data))
  return dataclasses.replace(found, config=config, resolved=True)


def from_run(logdir: str, checkpoint: str = "auto", data_dir: str | None = None) -> ImagePair:
  """The pair of a glow-train run folder: its EMA Glows and, of a coupled run, its EMA prior.

  Args:
    logdir: the run's folder.
    checkpoint: "auto" (each side's best-test-loss model, else the last training checkpoint),
      "last", or a checkpoint path (`run_dir.find_checkpoint`).
    data_dir: where the run's data is now, if it moved (read only for an older run folder).

  Raises:
    ValueError: a run of one Glow.
    FileNotFoundError: no checkpoint.
  """
  run = read_run(logdir, data_dir)
  if len(run.keys) != 2:
    raise ValueError(f"load_pair: {logdir} is a run of one Glow, not of a pair")
  (glow_a, glow_b), _ = run_dir.load_glows(run, checkpoint)
  return ImagePair(glow_a, glow_b, run_dir.load_coupled_prior(run, checkpoint))


def load_pair(path: str, checkpoint: str = "auto", data_dir: str | None = None):
  """The pair of image models in `path`: a glow-train run folder's or an exported SavedModel's.

  Args:
    path: a glow-train --logdir (an `ImagePair` of its EMA weights, `from_run`) or a folder
      glow-export wrote (a `SavedPair`; in TF Serving's layout, the version folder).
    checkpoint: of a run folder: "auto" (the best-test-loss models, else the last checkpoint),
      "last" or a checkpoint path.
    data_dir: of a run folder written before config.json: where its data is now.

  Returns:
    An `ImagePair` or a `SavedPair`, with the same methods: encode, decode, translate,
    sample_pairs, bits_per_dim, coupled_bits, joint_bits_per_dim, conditional_bits_per_dim,
    rho, coupled.

  Raises:
    FileNotFoundError: `path` is neither a run folder nor a SavedModel, or the run has no
      checkpoint.
    ValueError: the run or SavedModel of one Glow.
  """
  path = os.fspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"load_pair: {path} is not a folder")
  if any(os.path.exists(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")):
    return SavedPair(tf.saved_model.load(path), path)
  if any(os.path.exists(os.path.join(path, f)) for f in (run_dir.CONFIG_FILE, "train_A.txt")):
    return from_run(path, checkpoint, data_dir)
  raise FileNotFoundError(
    f"load_pair: {path} is neither a glow-train run folder ({run_dir.CONFIG_FILE} or "
    "train_A.txt) nor a SavedModel (saved_model.pb)"
  )
