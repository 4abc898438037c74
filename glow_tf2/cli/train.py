"""glow-train: train pix2pix-flow (two jointly trained Glow models) or one Glow model.

  glow-train --problem=mnist --logdir=runs/mnist --joint_train --n_levels=3 --depth=8 --width=128
  glow-train --problem=mnist --logdir=runs/mnist --inference   # z_A.npy, z_B.npy, A2B.png, B2A.png
  python -m glow_tf2.train --flagfile=runs/mnist.flags

Rerunning a command with the same --logdir resumes from its last checkpoint. The flags are the
original train.py's (choices as words, the original integers also accepted) plus --strategy,
--num_cpu_devices, --jit_compile, --train_steps and a few more; see docs/train.md.
"""

import functools
import os
import sys

from absl import app
from absl import flags
from absl import logging

from glow_tf2 import train_config as tc
from glow_tf2.config import COUPLING_CODES
from glow_tf2.config import COUPLINGS
from glow_tf2.config import PERMUTATION_CODES
from glow_tf2.config import PERMUTATIONS

FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines glow-train's flags on fv (the global FLAGS by default; tests pass their own)."""
  boolean = functools.partial(flags.DEFINE_bool, flag_values=fv)
  string = functools.partial(flags.DEFINE_string, flag_values=fv)
  integer = functools.partial(flags.DEFINE_integer, flag_values=fv)
  real = functools.partial(flags.DEFINE_float, flag_values=fv)
  # General.
  boolean("verbose", False, "Log more (TensorFlow's own messages too).")
  string("restore_path_A", "", "Checkpoint to restore model A's weights from (only A's).")
  string("restore_path_B", "", "Checkpoint to restore model B's weights from (only B's).")
  boolean("inference", False, "Write z_A.npy, z_B.npy, A2B.png, B2A.png instead of training.")
  string("logdir", "./logs", "Where every output goes; rerunning resumes from here.")
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
    "mnist",
    "Problem name (mnist, edges2shoes, cifar10, lsun, a folder, tfds:NAME); see glow_tf2.problems.",
  )
  string("category", "", "LSUN category (with --problem=lsun).")
  string("data_dir", None, "Folder of the problem's data.")
  string("tfds_data_dir", None, "tensorflow-datasets data folder for tfds: problems.")
  integer("channels", 3, "Colour channels, 1 or 3.")
  integer("dal", 1, "Data augmentation level (0 off, >= 1 random shifts up to 10%).")
  integer("fmap", 1, "Accepted for compatibility; tf.data tunes its own parallelism.")
  integer("pmap", 16, "Accepted for compatibility; tf.data tunes its own parallelism.")
  boolean("flip_color", False, "Invert the colours of domain B (255 - x) as it is read.")
  # Optimization.
  integer("n_train", 50000, "Training images per epoch.")
  integer("n_test", -1, "Test images to evaluate (-1: the whole test split).")
  integer("n_batch_train", 64, "Global training batch (summed over replicas).")
  integer("n_batch_test", 50, "Global test batch.")
  integer("n_batch_init", 256, "Images for the data-dependent initialisation.")
  string("optimizer", "adamax", "adam | adamax.")
  real("lr", 0.001, "Peak learning rate.")
  real("beta1", 0.9, "Adam/Adamax beta1.")
  real("polyak_epochs", 1.0, "EMA horizon in epochs: decay = 1 - 1/(steps per epoch * this).")
  real("weight_decay", 1.0, "Multiplicative weight decay per step (1.0 = off).")
  integer("epochs", 1000000, "Stop after this many epochs.")
  integer("train_steps", 0, "Stop after this many steps in total (0: only --epochs).")
  real("epochs_warmup", 10.0, "Epochs of linear learning-rate warmup.")
  integer("epochs_full_valid", 5, "Validate every so many epochs.")
  boolean(
    "gradient_checkpointing",
    True,
    "Recompute each step of flow in the backward pass (tf.recompute_grad): less memory.",
  )
  # Model.
  integer("image_size", -1, "Image side (-1: the problem's).")
  integer(
    "crop_size",
    0,
    "Read the centre crop_size x crop_size of the images (0: whole; 28 "
    "undoes the embedded sets' padding of 28x28 images to 32x32).",
  )
  integer("anchor_size", 32, "Batches shrink by (anchor_size / image_size)**2 for larger images.")
  integer("width", 512, "Channels of the coupling networks.")
  integer("depth", 32, "Steps of flow per level.")
  real("weight_y", 0.0, "Weight of the class-prediction loss (with --ycond).")
  integer("n_bits_x", 8, "Bits per colour channel (1..8).")
  integer("n_levels", 3, "Levels (scales) of the flow.")
  # Sampling.
  integer("n_sample", 64, "Images per sample grid.")
  integer("epochs_full_sample", 5, "Write sample grids every so many epochs.")
  # Ablation.
  boolean("learntop", False, "Learn the top prior.")
  boolean("ycond", False, "Class-conditional models (problems with labels).")
  integer("seed", 0, "Seed of weights, data order and noise.")
  string("flow_permutation", "conv", "reverse | shuffle | conv | lu (or 0, 1, 2, 3).")
  string("flow_coupling", "additive", "additive | affine (or 0, 1).")
  # pix2pix-flow.
  boolean("joint_train", False, "Add the code loss to both models' losses.")
  string("code_loss_type", "code_last", "code_last | code_all.")
  string("code_loss_fn", "l2", "l2 | l1.")
  real("code_loss_scale", 1.0, "Weight of the code loss.")
  real("mle_loss_scale", 1.0, "Weight of the bits/dim term.")
  real(
    "translation_loss_scale",
    0.0,
    "Weight of the translation loss (with --joint_train): the "
    "mean squared (--code_loss_fn) pixel error of decode_B(encode_A(x_A)) against x_B and of "
    "B -> A against x_A; 0 = off.",
  )
  # Distribution and speed.
  string("strategy", "auto", "auto | one_device | mirrored | multi_worker (reads TF_CONFIG).")
  integer(
    "num_cpu_devices",
    0,
    "Split the CPU into this many logical devices (mirrored training without GPUs).",
  )
  boolean("jit_compile", False, "XLA-compile the forward and backward pass.")
  integer(
    "intra_op_threads",
    0,
    "Threads per op (0 = TensorFlow's default, every core). On a "
    "CPU, 1 with --inter_op_threads=<cores> is faster (docs/train.md).",
  )
  integer("inter_op_threads", 0, "Ops run at once (0 = TensorFlow's default).")
  integer(
    "branches",
    1,
    "Run each batch as this many independent sub-batches, for more ops "
    "to run at once (see docs/train.md).",
  )
  integer("log_steps", 100, "Progress line and train summaries every so many steps.")
  integer("keep_checkpoints", 3, "Training checkpoints to keep.")


def apply_preset(values) -> dict:
  """Sets every flag of `--preset` that the command line left alone; returns those set."""
  from glow_tf2 import presets  # pylint: disable=g-import-not-at-top

  try:
    chosen = presets.preset(values.preset, values.problem)
  except ValueError as e:
    raise tc.ConfigError(str(e)) from None
  applied = {}
  for name, value in chosen.items():
    if not values[name].present:
      setattr(values, name, value)
      applied[name] = value
  return applied


def config_from_flags(values) -> tc.TrainConfig:
  """absl flag values -> a checked TrainConfig (raises ConfigError naming the flag).

  The problem's preset (`--preset`) fills in the flags not given first.
  """
  apply_preset(values)
  if values.category and values.problem != "lsun":
    raise tc.ConfigError(f"--category={values.category}: only with --problem=lsun")
  if values.problem == "lsun" and not values.category:
    raise tc.ConfigError("--problem=lsun: needs --category (bedroom, tower, church_outdoor)")
  return tc.TrainConfig(
    data=tc.DataConfig(
      problem=values.problem,
      data_dir=values.data_dir,
      tfds_data_dir=values.tfds_data_dir,
      category=values.category,
      channels=values.channels,
      image_size=values.image_size,
      crop_size=values.crop_size,
      dal=values.dal,
      n_train=values.n_train,
      n_test=values.n_test,
      flip_color=values.flip_color,
    ),
    model=tc.ModelConfig(
      n_levels=values.n_levels,
      depth=values.depth,
      width=values.width,
      permutation=tc.parse_choice(
        "flow_permutation", values.flow_permutation, PERMUTATIONS, PERMUTATION_CODES
      ),
      coupling=tc.parse_choice("flow_coupling", values.flow_coupling, COUPLINGS, COUPLING_CODES),
      learntop=values.learntop,
      ycond=values.ycond,
      n_bits_x=values.n_bits_x,
      gradient_checkpointing=values.gradient_checkpointing,
    ),
    optim=tc.OptimConfig(
      optimizer=tc.parse_choice("optimizer", values.optimizer, tc.OPTIMIZERS),
      lr=values.lr,
      beta1=values.beta1,
      polyak_epochs=values.polyak_epochs,
      weight_decay=values.weight_decay,
      epochs_warmup=values.epochs_warmup,
    ),
    loss=tc.LossConfig(
      joint_train=values.joint_train,
      code_loss_type=tc.parse_choice(
        "code_loss_type",
        values.code_loss_type,
        tc.CODE_LOSS_TYPES,
        aliases=tc.CODE_LOSS_TYPE_ALIASES,
      ),
      code_loss_fn=tc.parse_choice("code_loss_fn", values.code_loss_fn, tc.CODE_LOSS_FNS),
      code_loss_scale=values.code_loss_scale,
      mle_loss_scale=values.mle_loss_scale,
      translation_loss_scale=values.translation_loss_scale,
      weight_y=values.weight_y,
    ),
    logdir=values.logdir,
    seed=values.seed,
    n_batch_train=values.n_batch_train,
    n_batch_test=values.n_batch_test,
    n_batch_init=values.n_batch_init,
    anchor_size=values.anchor_size,
    epochs=values.epochs,
    train_steps=values.train_steps,
    epochs_full_valid=values.epochs_full_valid,
    epochs_full_sample=values.epochs_full_sample,
    n_sample=values.n_sample,
    inference=values.inference,
    restore_path_a=values.restore_path_A,
    restore_path_b=values.restore_path_B,
    strategy=tc.parse_choice("strategy", values.strategy, tc.STRATEGIES),
    num_cpu_devices=values.num_cpu_devices,
    jit_compile=values.jit_compile,
    intra_op_threads=values.intra_op_threads,
    inter_op_threads=values.inter_op_threads,
    branches=values.branches,
    verbose=values.verbose,
    log_steps=values.log_steps,
    keep_checkpoints=values.keep_checkpoints,
  )


def run_config(config: tc.TrainConfig):
  """Devices -> strategy -> data -> trainer -> fit (or inference). Returns the trainer."""
  # Import TensorFlow only now: the flags are checked, and devices must be set up first.
  from glow_tf2.train import distribute  # pylint: disable=g-import-not-at-top

  distribute.configure_threads(config.intra_op_threads, config.inter_op_threads)
  strategy = distribute.make_strategy(config.strategy, config.num_cpu_devices)
  from glow_tf2.input import pipeline as input_pipeline  # pylint: disable=g-import-not-at-top
  from glow_tf2.input import problems  # pylint: disable=g-import-not-at-top
  from glow_tf2.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top

  data = config.data
  try:
    problem = problems.get_problem(
      data.problem_name,
      data_dir=data.data_dir,
      channels=data.channels,
      image_size=None if data.image_size == -1 else data.image_size,
      tfds_data_dir=data.tfds_data_dir,
      crop_size=data.crop_size or None,
    )
  except ValueError as e:  # includes the data layer's DataError (missing or corrupt files)
    raise tc.ConfigError(f"--problem={data.problem_name}: {e}") from e
  trainer = trainer_lib.Trainer(config, problem, strategy, input_pipeline.make_dataset)
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO)
  try:
    preset = apply_preset(FLAGS)
    config = config_from_flags(FLAGS)
  except tc.ConfigError as e:
    sys.exit(f"glow-train: {e}")
  if preset:
    logging.info(
      "--preset=%s for --problem=%s set %s",
      FLAGS.preset,
      FLAGS.problem,
      " ".join(f"--{k}={v}" for k, v in preset.items()),
    )
  if not config.verbose:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  if not config.verbose:
    # TensorFlow's own INFO lines (checkpoint sharding, ...) only with --verbose.
    import logging as std_logging  # pylint: disable=g-import-not-at-top

    std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
  from glow_tf2.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top

  try:
    run_config(config)
  except tc.ConfigError as e:
    sys.exit(f"glow-train: {e}")
  except (trainer_lib.NonFiniteLossError, FileNotFoundError) as e:
    sys.exit(f"glow-train: {e}")


def run():
  """Console-script entry point (`glow-train`)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
