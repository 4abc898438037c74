"""glow-export: a training run's EMA weights as a SavedModel that serves with TensorFlow alone.

    glow-export --logdir=RUN --export_dir=DIR [--checkpoint=auto|last|PATH] [--overwrite]

The run's settings come from `RUN/config.json` (or, for runs written before it, the first line
of `RUN/train_A.txt`), so the models are rebuilt exactly as trained; only the EMA Glows are
built (no optimizer, data set or checkpoint manager). `--checkpoint=auto` takes what
`glow-train --inference` takes: each model's best-test-loss checkpoint (`RUN/best_A`,
`RUN/best_B`), else the last training checkpoint; `last` takes the last training checkpoint;
a path takes that checkpoint (`glow_tf2.run_dir.find_checkpoint`). The EMA (Polyak-averaged)
weights are exported. A coupled run (`--code_loss_type=coupled`) exports its EMA coupled prior
too (`run_dir.load_coupled_prior`, from the checkpoint side A comes from): its translations
draw from the conditional at a temperature, and it has `coupled_bits_per_dim`. Any other pair
is exported with rho = 1 (`glow_tf2.serving.export`).

Beside the SavedModel, in the same atomic rename, glow-export writes its model card
(`glow_tf2.serving.model_card`): `model_card.md` and `model_card.json` with the run's data,
configuration, training steps and time, glow-eval's metrics when the run folder has an
`eval.json`, and the model's limits.

For TF Serving, export to `<model_base_path>/<version>`, e.g. `--export_dir=models/glow/1`.
`--overwrite` replaces only a SavedModel of glow-export or an empty folder: a model base
folder (the `/1` forgotten) or a folder of other files is refused in one line naming what it
holds, exit status 1, before the run is loaded (`glow_tf2.serving.export_dir`).
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

from glow_tf2 import quiet  # noqa: F401  (TensorFlow's start-up banners only with --verbose)
from glow_tf2.cli import _run
from glow_tf2.serving import export
from glow_tf2.serving import export_dir
from glow_tf2.serving import model_card

FLAGS = flags.FLAGS


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
  flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace an existing --export_dir: a SavedModel of glow-export or an empty folder only.",
    flag_values=fv,
  )
  flags.DEFINE_bool("verbose", False, "Log more (TensorFlow's own messages too).", flag_values=fv)


def export_from_flags(values) -> str:
  """glow-export's work for parsed flag values (FLAGS, or a test's own FlagValues).

  Returns the export folder; raises SystemExit with a one-line message on a user error.
  """
  if not values.logdir or not values.export_dir:
    raise app.UsageError("--logdir and --export_dir are required")
  try:
    export_dir.check_export_dir(values.export_dir, values.overwrite)
  except FileExistsError as e:
    sys.exit(f"glow-export: {e}")
  try:
    run = _run.load_run(values.logdir, values.checkpoint, values.data_dir)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f"glow-export: {e}")
  module = export.build_serving_module(*run.glows, prior=run.prior)
  facts = model_card.RunFacts(
    logdir=os.path.abspath(values.logdir),
    config=run.config,
    keys=tuple(run.keys),
    checkpoints=tuple(run.checkpoints),
    n_train=_train_examples(run),
  )
  card = model_card.build(facts, module.signatures, module.coupled)
  try:
    path = export.export_saved_model(
      module,
      values.export_dir,
      overwrite=values.overwrite,
      extra_files=lambda folder: model_card.write(folder, card),
    )
  except FileExistsError as e:
    sys.exit(f"glow-export: {e}")
  config = module.config
  coupled = ", coupled prior" if module.coupled else ""
  print(
    f"glow-export: {len(run.glows)} model(s) {config.image_shape} from "
    f"{', '.join(run.checkpoints)} (EMA weights{coupled})"
  )
  print(f"glow-export: wrote {path}")
  print(f"glow-export: signatures {', '.join(sorted(module.signatures))}")
  evaluated = "with eval.json's metrics" if card["evaluation"] else "not evaluated: no eval.json"
  print(f"glow-export: model card {model_card.MARKDOWN_NAME}, {model_card.JSON_NAME} ({evaluated})")
  return path


def _train_examples(run) -> int | None:
  """The run's training split size for the card, None when its data is not found."""
  try:
    return int(run.problem.n_train)
  except (OSError, ValueError) as e:  # a moved or missing data folder (DataError is a ValueError)
    logging.warning("model card without the training set's size: %s", e)
    return None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO if FLAGS.verbose else logging.WARNING)
  export_from_flags(FLAGS)


def run():
  """Console-script entry point (`glow-export`)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
