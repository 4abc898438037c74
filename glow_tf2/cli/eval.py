"""glow-eval: measure a trained pix2pix-flow pair (or one Glow) on its paired test set.

    glow-eval --logdir=RUN [--saved_model=DIR] [--report=PATH] [--figure=PATH]
    glow-eval --z_a=z_A.npy --z_b=z_B.npy [--n_levels=3 | --top_dim=768]

With --logdir, the run's configuration (RUN/config.json, or the first line of RUN/train_A.txt
for older runs) gives the problem and its data; the models are the run's EMA weights (as
glow-export exports them, built without a Trainer; --weights=trained: the trained weights they
average) or, with --saved_model, an exported SavedModel. Reports bits/dim of A and B (mean and
standard error, with dequantization noise and mid-bin), the code MSE, and the translation A -> B
and B -> A against the true partner (MSE, PSNR, SSIM) next to the identity and nearest-neighbour
baselines (see `glow_tf2.serving.evaluation`). Writes a JSON report (default RUN/eval.json) and a
PNG figure (default next to the report), and prints a table.

A coupled run (`--code_loss_type=coupled`; its EMA coupled prior is loaded with the models, or
is in the SavedModel) adds the pair's joint bits/dim and the conditional bits/dim of B given A
and of A given B, and --draws translations of every test input at --temperature, both ways:
best-of-k and mean PSNR and the per-pixel spread across the draws. Its T = 0 translation (the
MSE/PSNR/SSIM above) is the conditional mean, through rho. Other runs report none of these.

For a problem with class labels (mnist, fashion_edges2shoes, cifar10, labelled folders), a
classifier of each domain, trained on its training images on first use and cached beside the
data (`<data>/judges/`), judges --n_samples samples per side at each of
--sample_temperatures (the fraction classified with p >= 0.9, the entropy of their classes, the
Frechet distance of its features to the real test images', with the real images' own floor) and
whether translations keep their source's label (`glow_tf2.serving.sample_quality`);
--feature_model=PATH adds the Frechet distance in a Keras network's feature space (FID with
Inception-v3). The samples judged are drawn in `<report>_samples.png`.

With --z_a/--z_b, reports the code MSE of codes written by `glow-train --inference` alone, over
all dims and over the top block (D / 2**(n_levels - 1) dims, or --top_dim).
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from glow_tf2 import config as config_lib
from glow_tf2 import quiet  # noqa: F401  (TensorFlow's start-up banners only with --verbose)
from glow_tf2 import run_dir
from glow_tf2 import run_lock
from glow_tf2.cli import _run
from glow_tf2.cli import flag_parsing
from glow_tf2.quality import judge as judges_lib
from glow_tf2.serving import eval_report
from glow_tf2.serving import evaluation
from glow_tf2.serving import export
from glow_tf2.serving import sample_quality

FLAGS = flags.FLAGS
EVAL_FLAGS = config_lib.flag_specs(config_lib.EvalConfig)


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  flags.DEFINE_string("logdir", None, "The training run (glow-train's --logdir).", flag_values=fv)
  flags.DEFINE_string(
    "saved_model",
    None,
    "Evaluate this SavedModel (glow-export's) instead of the run's checkpoint.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "checkpoint",
    "auto",
    "Without --saved_model: auto (best-test-loss models, "
    "else the last checkpoint) | last | a checkpoint path.",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "weights",
    "ema",
    list(run_dir.WEIGHTS),
    "Without --saved_model: the Polyak averages glow-train validates and exports (ema), or the "
    "trained weights they average (trained).",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "report", None, "JSON report path (default <logdir>/eval.json).", flag_values=fv
  )
  flags.DEFINE_string(
    "figure", None, "PNG figure path (default: the report's path, .png).", flag_values=fv
  )
  flags.DEFINE_string("data_dir", None, "The run's data folder, if it moved.", flag_values=fv)
  flag_parsing.define_config_flags(EVAL_FLAGS, fv)
  flags.DEFINE_string(
    "z_a", None, "Codes of domain A ([N, D] .npy from --inference).", flag_values=fv
  )
  flags.DEFINE_string("z_b", None, "Codes of domain B.", flag_values=fv)
  flags.DEFINE_integer(
    "n_levels",
    3,
    "With --z_a/--z_b: levels of the model (the top block is D / 2**(n_levels-1) dims).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "top_dim", 0, "With --z_a/--z_b: the top block's size (overrides --n_levels).", flag_values=fv
  )
  flags.DEFINE_bool("verbose", False, "Log more (TensorFlow's own messages too).", flag_values=fv)


def code_mse_report(z_a_path: str, z_b_path: str, n_levels: int = 3, top_dim: int = 0):
  """The code MSE of two .npy code files: {"n_test", "data_dim", "top_dim", "metrics"}.

  A file that is no .npy array (a text file, say) is a one-line ValueError naming it, and no
  file is ever unpickled (`serving.npy_files`).
  """
  from glow_tf2.serving import npy_files  # pylint: disable=g-import-not-at-top

  z_a = npy_files.load_npy(z_a_path)
  z_b = npy_files.load_npy(z_b_path)
  if z_a.ndim < 2:
    raise ValueError(f"{z_a_path}: codes must be [N, D], got shape {z_a.shape}")
  data_dim = int(np.prod(z_a.shape[1:]))
  top = top_dim or evaluation.top_dim_of(data_dim, n_levels)
  return {
    "n_test": int(z_a.shape[0]),
    "data_dim": data_dim,
    "top_dim": top,
    "metrics": {"code_mse": evaluation.code_mse(z_a, z_b, top)},
  }


def _collect(dataset, limit):
  """Numpy arrays of image_a, image_b, label from a batched dataset, up to limit examples."""
  parts = {"image_a": [], "image_b": [], "label": []}
  count = 0
  for batch in dataset:
    for key in parts:
      if key in batch:
        parts[key].append(batch[key].numpy())
    count += len(batch["image_a"])
    if 0 < limit <= count:
      break
  out = {
    k: np.concatenate(v)[:limit] if limit > 0 else np.concatenate(v) for k, v in parts.items() if v
  }
  return out


def make_judges(run, test, train, epochs=0, log=print):
  """{side: the domain's classifier} for a problem with labels, else None."""
  n_classes = int(run.problem.n_classes or 0)
  if n_classes < 2 or "label" not in test or "label" not in train:
    return None
  folder = run.problem.judges_dir
  return {
    side: judges_lib.judge_for(
      folder,
      side.upper(),
      train[key][: judges_lib.MAX_TRAIN_IMAGES],
      train["label"][: judges_lib.MAX_TRAIN_IMAGES],
      n_classes,
      test[key],
      test["label"],
      epochs=epochs or None,
      log=log,
    )
    for side, key in (("a", "image_a"), ("b", "image_b"))
    if key in test and key in train
  }


def evaluate_run(
  logdir,
  saved_model=None,
  checkpoint="auto",
  data_dir=None,
  settings: config_lib.EvalConfig = config_lib.EvalConfig(),
  weights="ema",
):
  """The full report of a run: its test pairs through its EMA models (`weights="trained"`: the
  weights they average) or an exported SavedModel.

  A coupled run's checkpoint also gives its coupled prior (`cli/_run.load_run`).
  `settings` says what is measured: with `judge`, a problem with labels gets the sample-quality
  metrics of its domains' classifiers; `feature_model` (a path) adds the Frechet distance in that
  network's space.
  """
  n_test, n_train_reference, batch_size = (
    settings.n_test,
    settings.n_train_reference,
    settings.batch_size,
  )
  run = _run.load_run(logdir, checkpoint, data_dir, restore=saved_model is None, weights=weights)
  if saved_model:
    module = tf.saved_model.load(saved_model)
    source = os.path.abspath(saved_model)
  else:
    module = export.build_serving_module(*run.glows, prior=run.prior)
    coupled = ", coupled prior" if module.coupled else ""
    kind = "EMA weights" if weights == "ema" else "trained weights"
    source = ", ".join(run.checkpoints) + f" ({kind}{coupled})"
  if n_test == 0:
    n_test = run.config.data.n_test
  test = _collect(run.dataset("test", batch_size), n_test)
  paired = "image_b" in test and len(run.keys) == 2
  train = None
  if paired and n_train_reference != 0:
    train = _collect(run.dataset("train", 256), n_train_reference)
  labels = test.get("label") if run.ycond else None
  judges = None
  if settings.judge and int(run.problem.n_classes or 0) >= 2:
    # A judge learns from the first MAX_TRAIN_IMAGES training images: the nearest-neighbour
    # reference set when it holds them (the whole split, the default), else read them.
    limit = judges_lib.MAX_TRAIN_IMAGES
    reference_holds = train is not None and (n_train_reference == -1 or n_train_reference >= limit)
    judge_train = train if reference_holds else _collect(run.dataset("train", 256), limit)
    judges = make_judges(run, test, judge_train, settings.judge_epochs)
  feature_nets = None
  if settings.feature_model:
    net = judges_lib.FeatureNet(settings.feature_model)
    feature_nets = {side: net for side in ("a", "b") if f"image_{side}" in test}
  report = evaluation.evaluate(
    module,
    test["image_a"],
    test["image_b"] if paired else None,
    labels=labels,
    train_a=train["image_a"] if train else None,
    train_b=train["image_b"] if train else None,
    batch_size=batch_size,
    seed=settings.seed,
    temperature=settings.temperature,
    draws=settings.draws,
    judges=judges,
    feature_nets=feature_nets,
    classes=test.get("label"),
    n_samples=settings.n_samples,
    sample_temperatures=settings.sample_temperatures,
  )
  report.update(
    logdir=os.path.abspath(logdir),
    problem=run.config.data.problem_name,
    source=source,
    n_train_reference=len(train["image_a"]) if train else 0,
  )
  return report


def eval_from_flags(values) -> dict:
  """glow-eval's work for parsed flag values (FLAGS, or a test's own FlagValues).

  Prints the table, writes the report (and figure); returns the report. A user error raises
  SystemExit with a one-line message.
  """
  if values.z_a or values.z_b:
    if not (values.z_a and values.z_b):
      raise app.UsageError("--z_a and --z_b go together")
    try:
      report = code_mse_report(values.z_a, values.z_b, values.n_levels, values.top_dim)
    except (OSError, ValueError) as e:
      sys.exit(f"glow-eval: {e}")
    code = report["metrics"]["code_mse"]
    print(
      f"codes: {report['n_test']} pairs, D = {report['data_dim']}, top block "
      f"{report['top_dim']} dims"
    )
    print(f"code MSE: all dims {code['all']:.6f}   top block {code['top']:.6f}")
    if values.report:
      eval_report.write_report(report, values.report)
      print(f"wrote {values.report}")
    return report
  if not values.logdir:
    raise app.UsageError("give --logdir=RUN (or --z_a and --z_b)")
  if os.path.exists(values.logdir) and not os.path.isdir(values.logdir):
    sys.exit(f"glow-eval: --logdir={values.logdir}: a file, not a run folder")
  if values.saved_model and values.weights != "ema":
    sys.exit(
      f"glow-eval: --weights={values.weights} reads a run's checkpoint; a SavedModel holds only "
      "the EMA weights"
    )
  fields = {spec.path: values[spec.flag].value for spec in EVAL_FLAGS}
  try:
    settings = config_lib.eval_config(fields)
  except config_lib.ConfigError as e:
    sys.exit(f"glow-eval: {e}")
  report_path = values.report or os.path.join(values.logdir, "eval.json")
  figure_path = values.figure or os.path.splitext(report_path)[0] + ".png"
  samples_path = os.path.splitext(figure_path)[0] + "_samples.png"
  try:
    # Writing into the run folder: one writer at a time (a training run there holds it).
    lock = _run.hold_if_writing(
      values.logdir, [report_path, figure_path, samples_path], "glow-eval"
    )
    report = evaluate_run(
      values.logdir,
      values.saved_model,
      values.checkpoint,
      values.data_dir,
      settings,
      values.weights,
    )
  except (FileNotFoundError, ValueError, run_lock.FolderInUseError) as e:
    sys.exit(f"glow-eval: {e}")
  print(f"glow-eval: {report['problem']}, models from {report['source']}")
  print(eval_report.format_table(report))
  eval_report.write_report(report, report_path)
  print(f"wrote {report_path}")
  if eval_report.save_figure(report, figure_path):
    print(f"wrote {figure_path}")
  if sample_quality.save_samples_figure(report, samples_path):
    print(f"wrote {samples_path}")
  if lock is not None:
    lock.release()
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO if FLAGS.verbose else logging.WARNING)
  eval_from_flags(FLAGS)


def run():
  """Console-script entry point (`glow-eval`)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
