"""glow-export: a training run's EMA weights as a SavedModel that serves with TensorFlow alone.

    glow-export --logdir=RUN --export_dir=DIR [--checkpoint=auto|last|PATH] [--overwrite]

The run's settings come from the first line of `RUN/train_A.txt` (the JSON of every flag
glow-train ran with), so the models are rebuilt exactly as trained. `--checkpoint=auto` takes
what `glow-train --inference` takes: each model's best-test-loss checkpoint (`RUN/best_A`,
`RUN/best_B`), else the last training checkpoint; `last` takes the last training checkpoint;
a path takes that checkpoint. The EMA (Polyak-averaged) weights are exported.

For TF Serving, export to `<model_base_path>/<version>`, e.g. `--export_dir=models/glow/1`.

`load_run` is shared with glow-eval.
"""

import dataclasses
import json
import os
import sys
from typing import Any

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS


@dataclasses.dataclass
class LoadedRun:
  """A training run rebuilt from its logdir.

  Attributes:
    config: the run's `TrainConfig` (logdir replaced by where the run is now).
    trainer: the run's `Trainer` (its data sets, sides and checkpoints).
    glows: the EMA Glow of each domain, A first (one for a plain Glow run), weights restored
      (None before `restore`).
    checkpoints: what each side was restored from.
  """

  config: Any
  trainer: Any
  glows: list[Any] | None = None
  checkpoints: list[str] | None = None


def read_hyperparameters(logdir: str) -> dict[str, Any]:
  """The run's settings: the first line of `<logdir>/train_A.txt` (JSON)."""
  path = os.path.join(logdir, "train_A.txt")
  try:
    with open(path) as f:
      first = f.readline()
  except FileNotFoundError:
    raise FileNotFoundError(
      f"--logdir={logdir}: no train_A.txt there (not a glow-train run?)"
    ) from None
  try:
    hyperparameters = json.loads(first)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: the first line is not the run's JSON settings ({e})") from None
  if not isinstance(hyperparameters, dict) or "problem" not in hyperparameters:
    raise ValueError(f"{path}: the first line does not hold the run's settings")
  return hyperparameters


def config_from_hyperparameters(hyperparameters: dict[str, Any], logdir: str, **overrides):
  """The flat settings dict of `TrainConfig.hyperparameters()` back into a `TrainConfig`.

  Nested configs (data, model, optim, loss) take the keys that are their fields; top-level
  fields the rest. `logdir` is where the run is now (it may have moved); `overrides` replace
  data fields (e.g. data_dir).
  """
  from glow_tf2 import train_config as tc  # pylint: disable=g-import-not-at-top

  values = dict(hyperparameters)
  values.update({k: v for k, v in overrides.items() if v is not None})
  kwargs = {}
  for field in dataclasses.fields(tc.TrainConfig):
    default = field.default
    if dataclasses.is_dataclass(default):
      sub = {f.name: values[f.name] for f in dataclasses.fields(default) if f.name in values}
      kwargs[field.name] = type(default)(**sub)
    elif field.name in values:
      kwargs[field.name] = values[field.name]
  kwargs.update(
    logdir=logdir,
    inference=False,
    restore_path_a="",
    restore_path_b="",
    strategy="auto",
    num_cpu_devices=0,
    jit_compile=False,
  )
  return tc.TrainConfig(**kwargs)


def load_run(
  logdir: str, checkpoint: str = "auto", data_dir: str | None = None, restore: bool = True
) -> LoadedRun:
  """Rebuilds a run's trainer from its logdir and restores its EMA models.

  Args:
    logdir: the run's --logdir.
    checkpoint: "auto" (best-test-loss models, else the last checkpoint), "last", or a path.
    data_dir: where the run's data is now, if it moved.
    restore: False to skip restoring (only the data is wanted).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from glow_tf2.input import pipeline as input_pipeline  # pylint: disable=g-import-not-at-top
  from glow_tf2.input import problems  # pylint: disable=g-import-not-at-top
  from glow_tf2.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top

  config = config_from_hyperparameters(read_hyperparameters(logdir), logdir, data_dir=data_dir)
  data = config.data
  problem = problems.get_problem(
    data.problem_name,
    data_dir=data.data_dir,
    channels=data.channels,
    image_size=None if data.image_size == -1 else data.image_size,
    tfds_data_dir=data.tfds_data_dir,
    crop_size=data.crop_size or None,
  )
  trainer = trainer_lib.Trainer(
    config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset
  )
  run = LoadedRun(config=config, trainer=trainer)
  if not restore:
    return run
  if checkpoint == "auto":
    trainer.load_for_inference()
    paths = []
    for side in trainer.sides:
      best = os.path.join(logdir, f"best_{side.key}")
      paths.append(
        tf.train.latest_checkpoint(best) or tf.train.latest_checkpoint(trainer.checkpoint_dir)
      )
  else:
    path = trainer.checkpoint_dir if checkpoint == "last" else checkpoint
    paths = [trainer.restore_side(side, path) for side in trainer.sides]
  run.glows = [side.ema.glow for side in trainer.sides]
  run.checkpoints = paths
  return run


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  flags.DEFINE_string("logdir", None, "The training run (glow-train's --logdir).", flag_values=fv)
  flags.DEFINE_string(
    "export_dir",
    None,
    "Where to write the SavedModel (for TF Serving: <model_base_path>/<version>).",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "checkpoint",
    "auto",
    "auto (best-test-loss models, else the last checkpoint) | last | a checkpoint path.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "data_dir",
    None,
    "The run's data folder, if it moved (the data is only used to describe the problem).",
    flag_values=fv,
  )
  flags.DEFINE_bool("overwrite", False, "Replace an existing --export_dir.", flag_values=fv)


def export_from_flags(values) -> str:
  """glow-export's work for parsed flag values (FLAGS, or a test's own FlagValues).

  Returns the export folder; raises SystemExit with a one-line message on a user error.
  """
  if not values.logdir or not values.export_dir:
    raise app.UsageError("--logdir and --export_dir are required")
  from glow_tf2.serving import export  # pylint: disable=g-import-not-at-top

  try:
    run = load_run(values.logdir, values.checkpoint, values.data_dir)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f"glow-export: {e}")
  module = export.build_serving_module(*run.glows)
  try:
    path = export.export_saved_model(module, values.export_dir, overwrite=values.overwrite)
  except FileExistsError as e:
    sys.exit(f"glow-export: {e}")
  config = module.config
  print(
    f"glow-export: {len(run.glows)} model(s) {config.image_shape} from "
    f"{', '.join(run.checkpoints)} (EMA weights)"
  )
  print(f"glow-export: wrote {path}")
  print(f"glow-export: signatures {', '.join(sorted(module.signatures))}")
  return path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  logging.set_verbosity(logging.WARNING)
  export_from_flags(FLAGS)


def run():
  """Console-script entry point (`glow-export`)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
