"""A training run's folder (glow-train's --logdir): its configuration and its checkpoints.

    <logdir>/config.json                      the run's TrainConfig (written when training starts)
    <logdir>/train_A.txt, test_A.txt, ...     JSON logs (first line: the run's flags)
    <logdir>/checkpoints/ckpt-<step>          training checkpoints (both sides, optimizers, step)
    <logdir>/best_A/model_A_best_loss-<step>  each side's best-test-loss model (model and EMA)

`read_config` gives the run's typed `TrainConfig` back; for folders written before config.json
existed, it parses the first line of train_A.txt (keyed by flag name, or by the config field
names older versions used). `find_checkpoint` is the one best/last policy (training's
--inference, glow-eval and glow-export all use it), and `load_glows` builds a run's Glow models
and restores their EMA (or trained) weights from it with no optimizer, data set or manager.

A checkpoint that does not read (a data file cut short by a full disk or a copy, a flipped bit,
a missing file) is not a dead end: `newest_readable` reads every tensor of a folder's newest
checkpoint back (which checks each tensor's CRC32C) and falls back to the next older one,
logging one line naming the bad file and why. Resuming, evaluating and exporting all go through
it; only when no checkpoint of a folder reads is the run refused (`UnreadableCheckpointError`,
one line naming the files). Saving goes through `save_checkpoint`, which turns a full disk into
one line naming the folder (`NoSpaceError`) and leaves the older checkpoints as they were.
"""

import dataclasses
import errno
import json
import os
import re
from typing import Any

from absl import logging
import tensorflow as tf

from glow_tf2 import config as config_lib
from glow_tf2.config import COUPLED_FLOOR
from glow_tf2.config import TrainConfig
from glow_tf2.flows.coupled_prior import CoupledPrior
from glow_tf2.flows.glow import Glow

CONFIG_FILE = "config.json"
FORMAT_VERSION = 1
CHECKPOINTS = "checkpoints"
CHECKPOINT_CHOICES = ("auto", "last")


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """What a run folder says about its run.

  Attributes:
    config: the run's TrainConfig; `logdir` is where the folder is now.
    keys: its sides, ("A",) or ("A", "B").
    resolved: whether `config.model` holds the data's image shape and classes (config.json
      does; an older folder's first log line does not: `TrainConfig.resolve(problem)` then).
  """

  config: TrainConfig
  keys: tuple[str, ...]
  resolved: bool


def checkpoint_dir(logdir: str) -> str:
  return os.path.join(logdir, CHECKPOINTS)


def best_dir(logdir: str, key: str) -> str:
  return os.path.join(logdir, f"best_{key}")


def best_checkpoint_name(key: str) -> str:
  return f"model_{key}_best_loss"


# -------------------------------------------------------------------------------------------------
# The configuration.


def write_config(logdir: str, config: TrainConfig, keys) -> str:
  """Writes `<logdir>/config.json` atomically (temporary file, then rename); returns its path."""
  os.makedirs(logdir, exist_ok=True)
  path = os.path.join(logdir, CONFIG_FILE)
  payload = {
    "format_version": FORMAT_VERSION,
    "sides": list(keys),
    "config": config_lib.to_dict(config),
  }
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=1)
    f.write("\n")
  os.replace(tmp, path)
  return path


def _legacy_values(first_line: dict[str, Any]) -> dict[str, Any]:
  """{field path: value} from a first log line keyed by flag name or by field name."""
  by_leaf = {path.rsplit(".", 1)[-1]: path for path in config_lib.field_paths()}
  # Field names of the model part before it was a GlowConfig.
  by_leaf.update(ycond="ycond", gradient_checkpointing="gradient_checkpointing")
  values = {}
  for key, value in first_line.items():
    path = config_lib.FLAG_FIELDS.get(key) or by_leaf.get(key)
    if path and path not in ("model.image_shape", "model.n_classes"):
      values[path] = value
  return values


def read_config(logdir: str, **data_overrides) -> RunConfig:
  """The run in `logdir`: config.json, else the first line of train_A.txt.

  The result is ready to evaluate or export: `logdir` is the folder's place now, and the
  settings of how it ran (inference, restore paths, strategy, devices, XLA) are reset.
  `data_overrides` replace data fields (e.g. data_dir=... when the data moved; None is ignored).
  """
  path = os.path.join(logdir, CONFIG_FILE)
  if os.path.exists(path):
    with open(path) as f:
      try:
        payload = json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
      raise ValueError(f"{path}: format_version {version!r}, this version reads {FORMAT_VERSION}")
    config = config_lib.from_dict(payload["config"])
    keys, resolved = tuple(payload["sides"]), True
  else:
    config = config_lib.build(_legacy_values(read_first_line(logdir)))
    has_b = os.path.exists(os.path.join(logdir, "train_B.txt"))
    keys, resolved = ("A", "B") if has_b else ("A",), False
  data = {f"data.{k}": v for k, v in data_overrides.items() if v is not None}
  config = config_lib.build(
    {
      **data,
      "logdir": logdir,
      "inference": False,
      "restore_path_a": "",
      "restore_path_b": "",
      "strategy": "auto",
      "num_cpu_devices": 0,
      "jit_compile": False,
    },
    base=config,
  )
  return RunConfig(config=config, keys=keys, resolved=resolved)


def read_first_line(logdir: str) -> dict[str, Any]:
  """The run's settings as its JSON logs hold them: the first line of `<logdir>/train_A.txt`."""
  path = os.path.join(logdir, "train_A.txt")
  try:
    with open(path) as f:
      first = f.readline()
  except FileNotFoundError:
    raise FileNotFoundError(
      f"--logdir={logdir}: no {CONFIG_FILE} or train_A.txt there (not a glow-train run?)"
    ) from None
  try:
    settings = json.loads(first)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: the first line is not the run's JSON settings ({e})") from None
  if not isinstance(settings, dict) or "problem" not in settings:
    raise ValueError(f"{path}: the first line does not hold the run's settings")
  return settings


# -------------------------------------------------------------------------------------------------
# Checkpoints.


# A refusal names this many unreadable checkpoints one by one, then counts the rest.
NAMED_IN_REFUSAL = 4


class UnreadableCheckpointError(ValueError):
  """A folder holds checkpoints but none reads; the one-line message names the files and why."""


class NoSpaceError(OSError):
  """A checkpoint could not be written for want of space; the message names the folder."""


def checkpoints_newest_first(directory: str) -> list[str]:
  """Every checkpoint prefix of `directory`, the newest first.

  In the order of the folder's `checkpoint` file (written by `tf.train.CheckpointManager` after
  each whole save: the latest, then the others newest first); without a readable `checkpoint`
  file, each `<prefix>.index` there by the number after the last "-". A checkpoint saved but
  not yet recorded in `checkpoint` (a kill between the two) is not one: the manager never
  finished it, and a resume takes the last one it did finish, as `tf.train.latest_checkpoint`.
  """
  state = tf.train.get_checkpoint_state(directory)  # None if missing or unparsable
  if state and state.model_checkpoint_path:
    listed = [state.model_checkpoint_path, *reversed(state.all_model_checkpoint_paths)]
    return list(dict.fromkeys(listed))
  prefixes = [p[: -len(".index")] for p in tf.io.gfile.glob(os.path.join(directory, "*.index"))]

  def number(prefix: str) -> int:
    found = re.search(r"-(\d+)$", prefix)
    return int(found.group(1)) if found else -1

  return sorted(prefixes, key=number, reverse=True)


def _first_line(error: BaseException) -> str:
  text = getattr(error, "message", None) or str(error) or type(error).__name__
  line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
  # TensorFlow names the bundle and shard before the reason; the caller names the file, and a
  # long path would push the reason past the cut below.
  line = re.sub(r"^TensorBundle at \S+ shard \d+ \(\d+ bytes\): ", "", line)
  return line if len(line) <= 160 else line[:157] + "..."


def _data_file(prefix: str, error: BaseException) -> str:
  """The data file a read of `prefix` failed on: the shard the error names, else the only one."""
  files = sorted(tf.io.gfile.glob(f"{prefix}.data-*"))
  shard = re.search(r"shard (\d+)", str(error))
  if shard:
    named = [f for f in files if f.startswith(f"{prefix}.data-{int(shard.group(1)):05d}-of-")]
    files = named or files
  return files[0] if len(files) == 1 else f"{prefix}.data-*"


# What reading a broken checkpoint raises: TensorFlow's errors (a missing file, a checksum), and
# from its Python reader IndexError (a file cut short) or ValueError.
READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, RuntimeError, OSError)


def unreadable(prefix: str) -> tuple[str, str] | None:
  """(the file at fault, why) if the checkpoint `prefix` does not read whole, else None.

  Reads the index, then every tensor: TensorFlow checks each tensor's size and CRC32C as it
  reads it, so a data file cut short, a flipped bit or a missing shard all show. (A restore
  would meet the same error part-way, after assigning some variables; reading first keeps a
  model from holding half of a broken checkpoint.) Costs one read of the checkpoint.
  """
  index = f"{prefix}.index"
  if not tf.io.gfile.exists(index):
    return index, "missing"
  try:
    reader = tf.train.load_checkpoint(prefix)
  except READ_ERRORS as e:
    return index, _first_line(e)
  try:
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except READ_ERRORS as e:
    return _data_file(prefix, e), _first_line(e)
  return None


def newest_readable(directory: str, checked: dict | None = None) -> str | None:
  """The newest checkpoint of `directory` that reads whole (`unreadable`); None if it has none.

  Each newer one that does not read logs a line naming its bad file and why.

  Args:
    directory: a folder of checkpoints (`checkpoints/`, `best_A/`, ...).
    checked: {prefix: `unreadable`'s answer} shared by the calls of one load (each checkpoint
      is then read and reported once).

  Raises:
    UnreadableCheckpointError: the folder has checkpoints and none of them reads.
  """
  checked = {} if checked is None else checked
  bad = []
  candidates = checkpoints_newest_first(directory)
  for i, prefix in enumerate(candidates):
    if prefix not in checked:
      checked[prefix] = unreadable(prefix)
      if checked[prefix]:
        path, why = checked[prefix]
        older = candidates[i + 1 :]
        then = f"falling back to {os.path.basename(older[0])}" if older else "no older one"
        logging.warning("%s does not read (%s): %s", path, why, then)
    if not checked[prefix]:
      return prefix
    bad.append(checked[prefix])
  if not bad:
    return None
  named = "; ".join(f"{path} ({why})" for path, why in bad[:NAMED_IN_REFUSAL])
  more = f"; and {len(bad) - NAMED_IN_REFUSAL} more" if len(bad) > NAMED_IN_REFUSAL else ""
  raise UnreadableCheckpointError(
    f"no checkpoint in {directory} reads ({len(bad)} tried): {named}{more}"
  )


def find_checkpoint(logdir: str, key: str, which: str = "auto", checked: dict | None = None) -> str:
  """The checkpoint prefix side `key` is evaluated, exported or inferred from.

  The newest that reads whole: one that does not is skipped with a logged line (see
  `newest_readable`).

  Args:
    logdir: the run's folder.
    key: "A" or "B".
    which: "auto" (the side's best-test-loss model, else the last training checkpoint), "last"
      (the last training checkpoint), or a checkpoint path (a prefix or a folder of them).
    checked: shared by the calls of one load (`newest_readable`).

  Raises:
    FileNotFoundError: there is no checkpoint at all (or not the one named).
    UnreadableCheckpointError: there are checkpoints, none of which reads (or not the one named).
  """
  checked = {} if checked is None else checked
  if which == "auto":
    folders, where = (
      [best_dir(logdir, key), checkpoint_dir(logdir)],
      f"best_{key}/ or {CHECKPOINTS}/",
    )
  elif which == "last":
    folders, where = [checkpoint_dir(logdir)], f"{CHECKPOINTS}/"
  elif tf.io.gfile.isdir(which):
    folders, where = [which], which
  else:
    if not tf.io.gfile.exists(f"{which}.index"):
      raise FileNotFoundError(f"no checkpoint {which} ({which}.index missing)")
    if which not in checked:
      checked[which] = unreadable(which)
    if checked[which]:
      path, why = checked[which]
      raise UnreadableCheckpointError(f"checkpoint {which} does not read: {path} ({why})")
    return which
  refusals = []
  for folder in folders:
    try:
      found = newest_readable(folder, checked)
    except UnreadableCheckpointError as e:
      refusals.append(str(e))
      continue
    if found:
      return found
  if refusals:
    raise UnreadableCheckpointError(f"model {key}: " + "; ".join(refusals))
  raise FileNotFoundError(f"no checkpoint of model {key} in {logdir} ({where}); train first")


def save_checkpoint(manager: tf.train.CheckpointManager, number: int) -> str:
  """`manager.save(checkpoint_number=number)`; a full disk raises `NoSpaceError` naming the folder.

  A save writes its data into `<prefix>_temp/`, merges it into `<prefix>.index` and `.data-*`,
  and only then records the prefix in the folder's `checkpoint` file, so a save that fails
  leaves the older checkpoints whole and recorded; what it wrote of the new one is removed,
  to give the space back (unless the prefix was already recorded: an older checkpoint of that
  number, which `newest_readable` judges).

  Returns:
    The new checkpoint's prefix.
  """
  try:
    return manager.save(checkpoint_number=number)
  except (tf.errors.ResourceExhaustedError, OSError) as e:
    if isinstance(e, OSError) and e.errno not in (errno.ENOSPC, errno.EDQUOT):
      raise
    error = e
  directory = manager.directory
  recorded = checkpoints_newest_first(directory) if tf.io.gfile.isdir(directory) else []
  for temp in tf.io.gfile.glob(os.path.join(directory, f"*-{number}_temp")):
    tf.io.gfile.rmtree(temp)
  for index in tf.io.gfile.glob(os.path.join(directory, f"*-{number}.index")):
    prefix = index[: -len(".index")]
    if prefix not in recorded:
      for path in [index, *tf.io.gfile.glob(f"{prefix}.data-*")]:
        tf.io.gfile.remove(path)
  latest = tf.train.latest_checkpoint(directory)
  kept = f"the latest is {latest} (a rerun resumes from it)" if latest else "none was saved yet"
  raise NoSpaceError(
    f"cannot save the checkpoint of step {number} in {directory}: {_first_line(error)}; "
    f"the older checkpoints there are intact, {kept}; free some space and rerun",
  ) from error


# The two sets of weights a run keeps of every model: the Polyak average (EMA) that validation,
# samples, inference and export use, and the trained weights the optimizer moves (what the EMA
# averages; `--ema_epochs` sets how far behind it follows them).
WEIGHTS = ("ema", "trained")
# Where a checkpoint keeps each set: a side's models (`train.sides.Side`) and the coupled prior
# (`train.sides.Coupling`) save their trained weights under different names.
_MODEL_CHILD = {"ema": "ema", "trained": "model"}
_PRIOR_CHILD = {"ema": "ema", "trained": "prior"}


def _check_weights(weights: str) -> None:
  if weights not in WEIGHTS:
    raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")


def model_checkpoint_root(
  prefix: str, key: str, target: tf.Module, weights: str = "ema"
) -> tf.train.Checkpoint:
  """A tf.train.Checkpoint that restores side `key`'s EMA (or trained) model from `prefix` into
  `target`.

  `target` is anything whose tracked children are the model's (a `FlowModel`, or a
  `tf.train.Checkpoint(glow=glow)` for the Glow alone). A per-model file holds `model/` and
  `ema/`; a training checkpoint holds them under `model_<key>/`.
  """
  _check_weights(weights)
  child = _MODEL_CHILD[weights]
  try:
    names = [name for name, _ in tf.train.list_variables(prefix)]
  except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
    raise FileNotFoundError(f"{prefix}: not a readable checkpoint ({e})") from e
  if any(n.startswith("ema/") for n in names):
    return tf.train.Checkpoint(**{child: target})
  own = f"model_{key.lower()}/"
  if not any(n.startswith(own) for n in names):
    raise ValueError(f"{prefix}: holds neither a single model nor model {key} of a run")
  return tf.train.Checkpoint(**{own[:-1]: tf.train.Checkpoint(**{child: target})})


def load_glows(
  run: RunConfig, which: str = "auto", weights: str = "ema"
) -> tuple[list[Glow], list[str]]:
  """The run's Glow of each side (A first), its EMA (or trained) weights restored; and what they
  came from.

  Builds only the Glows: no optimizer, data set or checkpoint manager. `run.config` must be
  resolved (its model has the data's image shape; see `RunConfig.resolved`).
  """
  if not run.resolved:
    raise ValueError("load_glows needs a resolved config: TrainConfig.resolve(problem)")
  _check_weights(weights)
  glows, prefixes, checked = [], [], {}
  for key in run.keys:
    glow = Glow(run.config.model, name=f"glow_{key.lower()}_{weights}")
    prefix = find_checkpoint(run.config.logdir, key, which, checked)
    root = model_checkpoint_root(prefix, key, tf.train.Checkpoint(glow=glow), weights)
    root.restore(prefix).expect_partial().assert_existing_objects_matched()
    glows.append(glow)
    prefixes.append(prefix)
  return glows, prefixes


def load_coupled_prior(
  run: RunConfig, which: str = "auto", prefix: str | None = None, weights: str = "ema"
) -> CoupledPrior | None:
  """The EMA (or trained) coupled prior of a coupled run (None for any other run), weights
  restored.

  Read from the checkpoint side A's EMA model comes from (`find_checkpoint(.., "A", which)`,
  or `prefix` when the caller already found it): a training checkpoint holds it as
  `coupled/ema` (the trained prior as `coupled/prior`), and so does each side's best-model file.
  """
  _check_weights(weights)
  loss = run.config.loss
  if not (loss.coupled and len(run.keys) == 2):
    return None
  if not run.resolved:
    raise ValueError("load_coupled_prior needs a resolved config: TrainConfig.resolve(problem)")
  prior = CoupledPrior(
    run.config.model,
    loss.coupled_rho_init,
    loss.coupled_per_dimension,
    COUPLED_FLOOR,
    name=f"coupled_prior_{weights}",
  )
  prefix = prefix or find_checkpoint(run.config.logdir, "A", which)
  names = [name for name, _ in tf.train.list_variables(prefix)]
  if not any("coupled/" in n for n in names):
    raise ValueError(f"{prefix}: a coupled run's checkpoint without the coupled prior (coupled/)")
  root = tf.train.Checkpoint(coupled=tf.train.Checkpoint(**{_PRIOR_CHILD[weights]: prior}))
  root.restore(prefix).expect_partial().assert_existing_objects_matched()
  return prior
