"""glow-train: train pix2pix-flow (two jointly trained Glow models) or one Glow model.

  glow-train --problem=mnist --logdir=runs/mnist --joint_train --n_levels=3 --depth=8 --width=128
  glow-train --problem=mnist --logdir=runs/mnist --inference   # z_A.npy, z_B.npy, A2B.png, B2A.png
  python -m glow_tf2.cli.train --flagfile=runs/mnist.flags

Rerunning a command with the same --logdir resumes from its last checkpoint. The flags are the
original train.py's (choices as words, the original integers also accepted) plus --strategy,
--num_cpu_devices, --jit_compile, --train_steps, --precision and a few more; see docs/train.md.
Each flag sets one TrainConfig field (`config.FLAG_FIELDS`) and takes its default from there.
The problem's preset (`--preset`, `glow_tf2.presets`) sets the fields the command line leaves
alone: command line > preset > default.
"""

import functools
import logging as std_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging

from glow_tf2 import config as config_lib
from glow_tf2 import presets
from glow_tf2.cli import _quiet  # noqa: F401  (TensorFlow's start-up banners only with --verbose)
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import distribute
from glow_tf2.train import loop
from glow_tf2.train import threads

FLAGS = flags.FLAGS


def _default(flag: str):
  """The flag's default: its TrainConfig field's (one source for every default)."""
  return config_lib.default_of(config_lib.FLAG_FIELDS[flag])


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines glow-train's flags on fv (the global FLAGS by default; tests pass their own)."""
  boolean = functools.partial(flags.DEFINE_bool, flag_values=fv)
  string = functools.partial(flags.DEFINE_string, flag_values=fv)
  integer = functools.partial(flags.DEFINE_integer, flag_values=fv)
  real = functools.partial(flags.DEFINE_float, flag_values=fv)
  # General.
  boolean("verbose", _default("verbose"), "Log more (TensorFlow's own messages too).")
  string(
    "restore_path_A",
    _default("restore_path_A"),
    "Checkpoint to restore model A's weights from (only A's).",
  )
  string(
    "restore_path_B",
    _default("restore_path_B"),
    "Checkpoint to restore model B's weights from (only B's).",
  )
  boolean(
    "inference",
    _default("inference"),
    "Write z_A.npy, z_B.npy, A2B.png, B2A.png instead of training.",
  )
  string("logdir", _default("logdir"), "Where every output goes; rerunning resumes from here.")
  string(
    "preset",
    "auto",
    "Defaults for the flags not given: auto (the problem's published "
    "settings, see glow_tf2.presets; the original's defaults for other problems), none "
    "(the original's defaults), or a problem name (its settings).",
  )
  # Data.
  string(
    "problem",
    _default("problem"),
    "Problem name (mnist, edges2shoes, cifar10, lsun, a folder, tfds:NAME); see glow_tf2.problems.",
  )
  string("category", _default("category"), "LSUN category (with --problem=lsun).")
  string("data_dir", _default("data_dir"), "Folder of the problem's data.")
  string(
    "tfds_data_dir",
    _default("tfds_data_dir"),
    "tensorflow-datasets data folder for tfds: problems.",
  )
  integer("channels", _default("channels"), "Colour channels, 1 or 3.")
  integer("dal", _default("dal"), "Data augmentation level (0 off, >= 1 random shifts up to 10%).")
  integer("fmap", 1, "Accepted for compatibility; tf.data tunes its own parallelism.")
  integer("pmap", 16, "Accepted for compatibility; tf.data tunes its own parallelism.")
  boolean(
    "flip_color", _default("flip_color"), "Invert the colours of domain B (255 - x) as it is read."
  )
  # Optimization.
  integer("n_train", _default("n_train"), "Training images per epoch.")
  integer("n_test", _default("n_test"), "Test images to evaluate (-1: the whole test split).")
  integer(
    "n_batch_train", _default("n_batch_train"), "Global training batch (summed over replicas)."
  )
  integer("n_batch_test", _default("n_batch_test"), "Global test batch.")
  integer("n_batch_init", _default("n_batch_init"), "Images for the data-dependent initialisation.")
  string("optimizer", _default("optimizer"), "adam | adamax.")
  real("lr", _default("lr"), "Peak learning rate.")
  real("beta1", _default("beta1"), "Adam/Adamax beta1.")
  real(
    "polyak_epochs",
    _default("polyak_epochs"),
    "EMA horizon in epochs: decay = 1 - 1/(steps per epoch * this).",
  )
  real(
    "weight_decay", _default("weight_decay"), "Multiplicative weight decay per step (1.0 = off)."
  )
  integer("epochs", _default("epochs"), "Stop after this many epochs.")
  integer(
    "train_steps",
    _default("train_steps"),
    "Stop after this many steps in total (0: only --epochs).",
  )
  real("epochs_warmup", _default("epochs_warmup"), "Epochs of linear learning-rate warmup.")
  integer("epochs_full_valid", _default("epochs_full_valid"), "Validate every so many epochs.")
  boolean(
    "gradient_checkpointing",
    _default("gradient_checkpointing"),
    "Recompute each step of flow in the backward pass (tf.recompute_grad): less memory.",
  )
  # Model.
  integer("image_size", _default("image_size"), "Image side (-1: the problem's).")
  integer(
    "crop_size",
    _default("crop_size"),
    "Read the centre crop_size x crop_size of the images (0: whole; 28 "
    "undoes the embedded sets' padding of 28x28 images to 32x32).",
  )
  integer(
    "anchor_size",
    _default("anchor_size"),
    "Batches shrink by (anchor_size / image_size)**2 for larger images.",
  )
  integer("width", _default("width"), "Channels of the coupling networks.")
  integer("depth", _default("depth"), "Steps of flow per level.")
  real("weight_y", _default("weight_y"), "Weight of the class-prediction loss (with --ycond).")
  integer("n_bits_x", _default("n_bits_x"), "Bits per colour channel (1..8).")
  integer("n_levels", _default("n_levels"), "Levels (scales) of the flow.")
  # Sampling.
  integer("n_sample", _default("n_sample"), "Images per sample grid.")
  integer(
    "epochs_full_sample", _default("epochs_full_sample"), "Write sample grids every so many epochs."
  )
  # Ablation.
  boolean("learntop", _default("learntop"), "Learn the top prior.")
  boolean("ycond", _default("ycond"), "Class-conditional models (problems with labels).")
  integer("seed", _default("seed"), "Seed of weights, data order and noise.")
  string(
    "flow_permutation",
    _default("flow_permutation"),
    "reverse | shuffle | conv | lu (or 0, 1, 2, 3).",
  )
  string("flow_coupling", _default("flow_coupling"), "additive | affine (or 0, 1).")
  string(
    "precision",
    _default("precision"),
    "Compute type of the coupling networks and priors: float32 | mixed_bfloat16 | "
    "mixed_float16 (variables and the flow's arithmetic stay float32).",
  )
  # pix2pix-flow.
  boolean("joint_train", _default("joint_train"), "Add the code loss to both models' losses.")
  string(
    "code_loss_type",
    _default("code_loss_type"),
    "code_last | code_all (a squared distance between the codes) | coupled (no code loss: the "
    "codes are jointly Gaussian with a learned correlation rho and the loss is the pair's joint "
    "bits/dim; needs --joint_train).",
  )
  string("code_loss_fn", _default("code_loss_fn"), "l2 | l1.")
  real("code_loss_scale", _default("code_loss_scale"), "Weight of the code loss.")
  real("mle_loss_scale", _default("mle_loss_scale"), "Weight of the bits/dim term.")
  real(
    "translation_loss_scale",
    _default("translation_loss_scale"),
    "Weight of the translation loss (with --joint_train): the "
    "mean squared (--code_loss_fn) pixel error of decode_B(encode_A(x_A)) against x_B and of "
    "B -> A against x_A; 0 = off.",
  )
  real(
    "coupled_rho_init",
    _default("coupled_rho_init"),
    "--code_loss_type=coupled: the initial correlation of every channel's codes (|rho| < 1; "
    "0 never couples).",
  )
  boolean(
    "coupled_per_dimension",
    _default("coupled_per_dimension"),
    "--code_loss_type=coupled: one rho per dimension of the code instead of per channel of "
    "each level.",
  )
  # Distribution and speed.
  string(
    "strategy",
    _default("strategy"),
    "auto | one_device | mirrored | multi_worker (reads TF_CONFIG).",
  )
  integer(
    "num_cpu_devices",
    _default("num_cpu_devices"),
    "Split the CPU into this many logical devices (mirrored training without GPUs).",
  )
  boolean("jit_compile", _default("jit_compile"), "XLA-compile the forward and backward pass.")
  integer(
    "intra_op_threads",
    _default("intra_op_threads"),
    "Threads per op (0 = TensorFlow's default, every core). On a "
    "CPU, 1 with --inter_op_threads=<cores> is faster (docs/train.md).",
  )
  integer(
    "inter_op_threads", _default("inter_op_threads"), "Ops run at once (0 = TensorFlow's default)."
  )
  boolean(
    "pick_threads",
    _default("pick_threads"),
    "With both thread flags 0: time the step under a few thread settings on this machine and "
    "train with the fastest (CPU runs of 1,000+ steps; cached; docs/train.md).",
  )
  integer(
    "branches",
    _default("branches"),
    "Run each batch as this many independent sub-batches, for more ops "
    "to run at once (see docs/train.md).",
  )
  integer(
    "log_steps", _default("log_steps"), "Progress line and train summaries every so many steps."
  )
  integer("keep_checkpoints", _default("keep_checkpoints"), "Training checkpoints to keep.")
  integer(
    "checkpoint_steps",
    _default("checkpoint_steps"),
    "Also save a training checkpoint every so many steps (0 = off).",
  )
  real(
    "checkpoint_secs",
    _default("checkpoint_secs"),
    "Also save one when this many seconds passed since the last (0 = off): what a kill can lose.",
  )


def config_from_flags(values) -> config_lib.TrainConfig:
  """absl flag values -> a checked TrainConfig (raises ConfigError naming the flag)."""
  return configure(values)[0]


def configure(values) -> tuple[config_lib.TrainConfig, dict]:
  """(the run's TrainConfig, {field: value} the preset set) from parsed flag values.

  Every field takes its flag's value; the preset (`--preset`, for `--problem`) then replaces
  the fields whose flags the command line (or a --flagfile) did not give.
  """
  try:
    chosen = presets.preset(values.preset, values.problem)
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from None
  given = {path for flag, path in config_lib.FLAG_FIELDS.items() if values[flag].present}
  if "loss.joint_train" in given and not values.joint_train:
    chosen = presets.without_joint_training(chosen)
  applied = {path: value for path, value in chosen.items() if path not in given}
  fields = {path: values[flag].value for flag, path in config_lib.FLAG_FIELDS.items()}
  return config_lib.build({**fields, **applied}), applied


def train(config: config_lib.TrainConfig) -> loop.Trainer:
  """Threads -> problem -> strategy -> trainer -> fit (or inference). Returns the trainer.

  The problem is looked up before any thread pool is timed, so a bad --problem fails at once;
  reading a problem's description runs no TensorFlow op, so the pools can still be sized after.
  """
  given = bool(config.intra_op_threads or config.inter_op_threads)
  if given:
    distribute.configure_threads(config.intra_op_threads, config.inter_op_threads)
  data = config.data
  try:
    problem = problems.for_data(data)
  except ValueError as e:  # includes the data layer's DataError (missing or corrupt files)
    raise config_lib.ConfigError(f"--problem={data.problem_name}: {e}") from e
  config, how = threads.choose(config)
  logging.info("%s", how)
  if not given:
    distribute.configure_threads(config.intra_op_threads, config.inter_op_threads)
  strategy = distribute.make_strategy(config.strategy, config.num_cpu_devices)
  trainer = loop.Trainer(config, problem, strategy, input_pipeline.make_dataset)
  if not config.inference:
    threads.record(config, how)  # the trainer accepted the run: a resume keeps these pools
  logging.info(
    "problem %s %s (%s), %d replicas, global batch %d, %d steps per epoch, up to %d steps",
    problem.name,
    problem.image_shape,
    "paired" if problem.paired else "one domain",
    trainer.n_replicas,
    trainer.batch_train,
    trainer.steps_per_epoch,
    trainer.max_steps,
  )
  if config.inference:
    for name, path in trainer.infer().items():
      logging.info("wrote %s: %s", name, path)
  else:
    trainer.fit()
  return trainer


# The name the tests and tools used before `train`.
run_config = train


class _OwnInfoOnly(std_logging.Filter):
  """Drops INFO (and lower) records logged from TensorFlow's own modules."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    own = f"{os.sep}tensorflow{os.sep}" not in record.pathname
    return own or record.levelno >= std_logging.WARNING


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO)
  try:
    config, applied = configure(FLAGS)
  except config_lib.ConfigError as e:
    sys.exit(f"glow-train: {e}")
  if applied:
    logging.info(
      "--preset=%s for --problem=%s set %s",
      FLAGS.preset,
      FLAGS.problem,
      " ".join(f"{path}={value}" for path, value in applied.items()),
    )
  if not config.verbose:
    # TensorFlow's own INFO lines (checkpoint sharding, ...) only with --verbose; some go through
    # the "tensorflow" logger, some through absl's directly.
    std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
    logging.get_absl_handler().addFilter(_OwnInfoOnly())
  try:
    train(config)
  except (config_lib.ConfigError, loop.NonFiniteLossError, FileNotFoundError) as e:
    sys.exit(f"glow-train: {e}")


def run():
  """Console-script entry point (`glow-train`)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
