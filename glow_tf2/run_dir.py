"""A training run's folder (glow-train's --logdir): its configuration and its checkpoints.

    <logdir>/config.json                      the run's TrainConfig (written when training starts)
    <logdir>/train_A.txt, test_A.txt, ...     JSON logs (first line: the run's flags)
    <logdir>/checkpoints/ckpt-<step>          training checkpoints (both sides, optimizers, step)
    <logdir>/best_A/model_A_best_loss-<step>  each side's best-test-loss model (model and EMA)

`read_config` gives the run's typed `TrainConfig` back; for folders written before config.json
existed, it parses the first line of train_A.txt (keyed by flag name, or by the config field
names older versions used). `find_checkpoint` is the one best/last policy (training's
--inference, glow-eval and glow-export all use it), and `load_ema_glows` builds a run's EMA
Glow models and restores their weights from it with no optimizer, data set or manager.
"""

import dataclasses
import json
import os
from typing import Any

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


def find_checkpoint(logdir: str, key: str, which: str = "auto") -> str:
  """The checkpoint prefix side `key` is evaluated, exported or inferred from.

  Args:
    logdir: the run's folder.
    key: "A" or "B".
    which: "auto" (the side's best-test-loss model, else the last training checkpoint), "last"
      (the last training checkpoint), or a checkpoint path (a prefix or a folder of them).
  """
  if which == "auto":
    found = tf.train.latest_checkpoint(best_dir(logdir, key)) or tf.train.latest_checkpoint(
      checkpoint_dir(logdir)
    )
    where = f"best_{key}/ or {CHECKPOINTS}/"
  elif which == "last":
    found = tf.train.latest_checkpoint(checkpoint_dir(logdir))
    where = f"{CHECKPOINTS}/"
  else:
    found = tf.train.latest_checkpoint(which) if os.path.isdir(which) else which
    where = which
  if not found:
    raise FileNotFoundError(f"no checkpoint of model {key} in {logdir} ({where}); train first")
  return found


def ema_checkpoint_root(prefix: str, key: str, ema: tf.Module) -> tf.train.Checkpoint:
  """A tf.train.Checkpoint that restores side `key`'s EMA model from `prefix` into `ema`.

  `ema` is anything whose tracked children are the EMA model's (a `FlowModel`, or a
  `tf.train.Checkpoint(glow=glow)` for the Glow alone). A per-model file holds `model/` and
  `ema/`; a training checkpoint holds them under `model_<key>/`.
  """
  try:
    names = [name for name, _ in tf.train.list_variables(prefix)]
  except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
    raise FileNotFoundError(f"{prefix}: not a readable checkpoint ({e})") from e
  if any(n.startswith("ema/") for n in names):
    return tf.train.Checkpoint(ema=ema)
  own = f"model_{key.lower()}/"
  if not any(n.startswith(own) for n in names):
    raise ValueError(f"{prefix}: holds neither a single model nor model {key} of a run")
  return tf.train.Checkpoint(**{own[:-1]: tf.train.Checkpoint(ema=ema)})


def load_ema_glows(run: RunConfig, which: str = "auto") -> tuple[list[Glow], list[str]]:
  """The run's EMA Glow of each side (A first), weights restored; and what they came from.

  Builds only the Glows: no optimizer, data set or checkpoint manager. `run.config` must be
  resolved (its model has the data's image shape; see `RunConfig.resolved`).
  """
  if not run.resolved:
    raise ValueError("load_ema_glows needs a resolved config: TrainConfig.resolve(problem)")
  glows, prefixes = [], []
  for key in run.keys:
    glow = Glow(run.config.model, name=f"glow_{key.lower()}_ema")
    prefix = find_checkpoint(run.config.logdir, key, which)
    root = ema_checkpoint_root(prefix, key, tf.train.Checkpoint(glow=glow))
    root.restore(prefix).expect_partial().assert_existing_objects_matched()
    glows.append(glow)
    prefixes.append(prefix)
  return glows, prefixes


def load_coupled_prior(run: RunConfig, which: str = "auto") -> CoupledPrior | None:
  """The EMA coupled prior of a coupled run (None for any other run), weights restored.

  Read from the checkpoint side A's EMA model comes from (`find_checkpoint(.., "A", which)`):
  a training checkpoint holds it as `coupled/ema`, and so does each side's best-model file.
  """
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
    name="coupled_prior_ema",
  )
  prefix = find_checkpoint(run.config.logdir, "A", which)
  names = [name for name, _ in tf.train.list_variables(prefix)]
  if not any("coupled/" in n for n in names):
    raise ValueError(f"{prefix}: a coupled run's checkpoint without the coupled prior (coupled/)")
  root = tf.train.Checkpoint(coupled=tf.train.Checkpoint(ema=prior))
  root.restore(prefix).expect_partial().assert_existing_objects_matched()
  return prior
