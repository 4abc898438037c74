"""glow-train: train pix2pix-flow (two jointly trained Glow models) or one Glow model.

  glow-train --problem=mnist --logdir=runs/mnist --joint_train --n_levels=3 --depth=8 --width=128
  glow-train --problem=mnist --logdir=runs/mnist --inference   # z_A.npy, z_B.npy, A2B.png, B2A.png
  python -m glow_tf2.cli.train --flagfile=runs/mnist.flags

Rerunning a command with the same --logdir resumes from its last checkpoint (the newest that
reads). SIGTERM or SIGINT (a preemption, Ctrl-C) finishes the step in flight, saves it and exits
with 143 or 130 and one line naming the step and the checkpoint; a rerun then resumes bitwise.
One glow-train writes a run folder at a time: it holds `<logdir>/.lock` (`glow_tf2.run_lock`)
and a second one is refused at once, naming the holder's pid. The flags are the
original train.py's (choices as words, the original integers also accepted) plus --strategy,
--num_cpu_devices, --jit_compile, --train_steps, --precision and a few more; see docs/train.md.
Each flag but --preset (and the ignored --fmap, --pmap) sets one TrainConfig field
(`config.FLAG_FIELDS`) and is made from that field: name, default and help text
(`define_config_flags`). The problem's preset (`--preset`, `glow_tf2.presets`) sets the fields the command line leaves
alone: command line > preset > default.
"""

import errno
import logging as std_logging
import os
import shutil
import sys

from absl import app
from absl import flags
from absl import logging

from glow_tf2 import config as config_lib
from glow_tf2 import presets
from glow_tf2 import quiet  # noqa: F401  (TensorFlow's start-up banners only with --verbose)
from glow_tf2 import run_dir
from glow_tf2 import run_lock
from glow_tf2.cli import flag_parsing
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import distribute
from glow_tf2.train import finite
from glow_tf2.train import inference
from glow_tf2.train import loop
from glow_tf2.train import precision_pick
from glow_tf2.train import preemption
from glow_tf2.train import threads

FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines glow-train's flags on fv (the global FLAGS by default; tests pass their own)."""
  flag_parsing.define_config_flags(config_lib.TRAIN_FLAGS, fv)
  flags.DEFINE_string(
    "preset",
    "auto",
    "Defaults for the flags not given: auto (the problem's published "
    "settings, see glow_tf2.presets; the original's defaults for other problems), none "
    "(the original's defaults), or a problem name (its settings).",
    flag_values=fv,
  )
  for name, default in (("fmap", 1), ("pmap", 16)):
    flags.DEFINE_integer(
      name,
      default,
      "Accepted for compatibility; tf.data tunes its own parallelism.",
      flag_values=fv,
    )


def config_from_flags(values) -> config_lib.TrainConfig:
  """absl flag values -> a checked TrainConfig (raises ConfigError naming the flag)."""
  return configure(values)[0]


def configure(values) -> tuple[config_lib.TrainConfig, dict]:
  """(the run's TrainConfig, {field: value} the preset set) from parsed flag values.

  Every field takes its flag's value; the preset (`--preset`, for `--problem`) then replaces
  the fields whose flags the command line (or a --flagfile) did not give (`presets.chosen`, the
  rule `presets.apply` uses too). The preset goes over the flag values before any config is
  built: the command line alone need not be a valid run (`--problem=mnist --jit_compile` is one
  only with the preset's lu permutation).
  """
  given = {path for flag, path in config_lib.FLAG_FIELDS.items() if values[flag].present}
  try:
    applied = presets.chosen(values.preset, values.problem, given, values.joint_train)
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from None
  fields = {path: values[flag].value for flag, path in config_lib.FLAG_FIELDS.items()}
  return config_lib.build({**fields, **applied}), applied


def hold_run_folder(config: config_lib.TrainConfig) -> run_lock.RunLock | None:
  """The run folder's exclusive lock (`run_lock`), or None on a worker that does not write it.

  Every glow-train process that writes --logdir holds it: a second one is refused at once,
  naming the holder's pid. Of a multi-worker run only the chief writes the folder; the other
  workers write their own `.worker_N` scratch and read the chief's files, so they take no lock
  (all of them locking one folder would refuse each other).

  Raises:
    ConfigError: --logdir is a file, or cannot be made.
    run_lock.FolderInUseError: another process holds the folder.
  """
  logdir = config.logdir
  if os.path.exists(logdir) and not os.path.isdir(logdir):
    raise config_lib.ConfigError(f"--logdir={logdir}: a file, not a folder")
  if not threads.is_chief():
    return None
  try:
    return run_lock.hold(logdir, "glow-train")
  except run_lock.FolderInUseError:
    raise
  except OSError as e:  # a parent that is a file, no permission, ...
    raise config_lib.ConfigError(f"--logdir={logdir}: {e.strerror or e}") from e


def train(config: config_lib.TrainConfig) -> loop.Trainer:
  """Problem -> lock -> threads -> strategy -> trainer -> fit, or the --inference job over the
  trainer's models (`inference.run`). Returns the trainer.

  The problem is looked up first, so a bad --problem fails at once and touches no folder
  (reading a problem's description runs no TensorFlow op, so the pools can still be sized
  after). The run folder is locked next (`hold_run_folder`), before anything reads or writes it,
  and released on return; a folder the lock made is removed again if the run wrote nothing.
  """
  data = config.data
  try:
    problem = problems.for_data(data)
  except ValueError as e:  # includes the data layer's DataError (missing or corrupt files)
    raise config_lib.ConfigError(f"--problem={data.problem_name}: {e}") from e
  made = not os.path.exists(config.logdir)
  lock = hold_run_folder(config)
  try:
    return _train(config, problem)
  finally:
    if lock:
      lock.release()
    if lock and made and os.listdir(config.logdir) in ([], [".lock"]):
      # A run refused before it wrote anything leaves no folder behind (its lock made it; a
      # worker without the lock never removes the chief's folder).
      shutil.rmtree(config.logdir, ignore_errors=True)


def _train(config: config_lib.TrainConfig, problem) -> loop.Trainer:
  given = bool(config.intra_op_threads or config.inter_op_threads)
  if given:
    distribute.configure_threads(config.intra_op_threads, config.inter_op_threads)
  config, how = threads.choose(config)
  logging.info("%s", how)
  if not given:
    distribute.configure_threads(config.intra_op_threads, config.inter_op_threads)
  config, precision_how = precision_pick.choose(config)
  logging.info("%s", precision_how)
  strategy = distribute.make_strategy(config.strategy, config.num_cpu_devices)
  trainer = loop.Trainer(config, problem, strategy, input_pipeline.make_dataset)
  if not config.inference:
    threads.record(config, how)  # the trainer accepted the run: a resume keeps these pools
    precision_pick.record(config, precision_how)
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
    for name, path in inference.run(trainer).items():
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
  except preemption.Preempted as e:
    # Stopped on purpose, its checkpoint saved and its logs flushed: one line and a signal's exit
    # status (143, 130), at once. A preempted machine has seconds left, and a multi-worker
    # run's workers leave together: a worker still tearing TensorFlow down after the chief (the
    # coordination service's leader) has gone logs failed heartbeats after that line.
    print(f"glow-train: {e}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(e.exit_status)
  except (
    config_lib.ConfigError,
    finite.NonFiniteLossError,
    FileNotFoundError,
    run_dir.UnreadableCheckpointError,
    run_dir.NoSpaceError,
    run_lock.FolderInUseError,
  ) as e:
    sys.exit(f"glow-train: {e}")
  except OSError as e:
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
      raise
    # A log, an image or the config (the checkpoints' own saves say more: NoSpaceError).
    sys.exit(f"glow-train: no space left in --logdir={config.logdir}: {e}")


def run():
  """Console-script entry point (`glow-train`)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
