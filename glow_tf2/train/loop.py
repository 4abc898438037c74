"""Joint training of pix2pix-flow's two Glow models (or one, as plain Glow) under tf.distribute.

A `Trainer` wires the parts together: the sides (`sides.py`), the step functions (`step.py`), the
chief's outputs (`outputs.py`) and the run folder (`glow_tf2.run_dir`). It owns the order of
things in a run (and on resume):

1. If `<logdir>/checkpoints` has a checkpoint, restore everything from it: step, both models, EMA
   copies, optimizer slots and iteration counts (hence the lr schedule), best test losses.
2. Else run the data-dependent ActNorm init once, eagerly, in cross-replica context, on
   `n_batch_init` images (the same on every replica and worker), copy the weights to the EMA
   models, then restore `--restore_path_A` / `--restore_path_B` into that side only.
3. Write `<logdir>/config.json`, then train; at the end of every epoch write the JSON logs,
   validate every `epochs_full_valid` epochs (saving a side's best model when its test loss
   improves), draw sample and translation grids every `epochs_full_sample` epochs, then save a
   checkpoint. The last step of the run (from --epochs or --train_steps) always validates,
   samples and saves. Between epoch ends, a checkpoint is also saved every --checkpoint_steps
   steps and whenever --checkpoint_secs seconds passed since the last save.

Resuming is exact: the data of step s is a function of (--seed, s) (`train_iterator`: each
epoch reads a stream seeded by (seed, epoch), entered at the step's position), the noise is a
function of (seed, step) (`streams`), and the checkpoint holds everything else, so a run killed
at any step and resumed reaches the weights of an uninterrupted run. A resumed run must have the
architecture of its folder's config.json (`check_same_architecture`, a one-line ConfigError).

A checkpoint saved inside an epoch also holds the running sums of the epoch's statistics
(`outputs.progress_state`), so the epoch's JSON record after a resume is the uninterrupted run's.

Checkpoints are written by `tf.train.CheckpointManager` (data files first, then the `checkpoint`
index file atomically), so a run killed at any moment, even with SIGKILL, resumes from the last
complete checkpoint. Nothing non-finite is ever saved: a non-finite training loss or evaluation
raises `NonFiniteLossError` naming the step, and every save first checks every variable and the
outputs of the weights on a fixed batch (`check_savable`: finite weights can still diverge); the
message names the latest checkpoint, which is then still the last good one.

Why one file of ~700 lines: the order of a run (init or resume, the loop and its cadence of
logs, validation, grids and checkpoints, inference) is one sequence that is easiest to check
read top to bottom; the step, outputs, sides and streams it drives are their own files.
"""

import math
import os
import shutil
import time

from absl import logging
import numpy as np
import tensorflow as tf

from glow_tf2 import pair as pair_lib
from glow_tf2 import run_dir
from glow_tf2.config import FIELD_FLAGS
from glow_tf2.config import ConfigError
from glow_tf2.config import TrainConfig
from glow_tf2.train import distribute
from glow_tf2.train import evaluator as evaluator_lib
from glow_tf2.train import finite
from glow_tf2.train import inference
from glow_tf2.train import optim
from glow_tf2.train import outputs as outputs_lib
from glow_tf2.train import sides as sides_lib
from glow_tf2.train import step as step_lib
from glow_tf2.train import streams

N_TRANSLATE = outputs_lib.N_TRANSLATE
# GlowConfig fields a checkpoint's variables depend on: a resumed run must keep them (precision
# only changes what the coupling networks compute in, so it may change).
ARCHITECTURE_FIELDS = (
  "image_shape",
  "n_levels",
  "depth",
  "width",
  "permutation",
  "coupling",
  "learntop",
  "n_classes",
  "n_bits_x",
)


def _show(value) -> str:
  """A field's value as a flag would spell it (image shapes by their side)."""
  if isinstance(value, tuple):
    return "x".join(str(v) for v in value)
  if isinstance(value, bool):
    return str(value).lower()
  return str(value)


NonFiniteLossError = finite.NonFiniteLossError
pad_batch = evaluator_lib.pad_batch


class Trainer:
  """Builds the sides under `strategy` and runs training, validation and inference.

  Args:
    config: the run.
    problem: a `glow_tf2.input.problems.Problem` (`image_shape`, `paired`, `n_classes`, ...).
    strategy: a tf.distribute strategy (see `glow_tf2.train.distribute.make_strategy`).
    make_dataset: `input.pipeline.make_dataset` or a stand-in with its signature.
  """

  def __init__(self, config: TrainConfig, problem, strategy: tf.distribute.Strategy, make_dataset):
    self.config = config.resolve(problem)
    config = self.config
    self.problem = problem
    self.strategy = strategy
    self._make_dataset = make_dataset
    self.glow_config = config.model
    image_size = self.glow_config.image_shape[0]
    self.n_replicas = strategy.num_replicas_in_sync
    config.check_replicas(self.n_replicas, image_size)
    self.batch_train, self.batch_test, self.batch_init = config.global_batches(image_size)
    self.steps_per_epoch = config.steps_per_epoch(image_size)
    self.max_steps = config.epochs * self.steps_per_epoch
    if config.train_steps:
      self.max_steps = min(self.max_steps, config.train_steps)
    self.is_chief, _, task_id = distribute.worker_identity(strategy)
    self.ycond = self.glow_config.n_classes > 0
    self.keys = ("A", "B") if problem.paired else ("A",)

    beta2 = config.optim.beta2(self.steps_per_epoch)
    self.learning_rate = optim.LinearWarmup(
      config.optim.lr, config.optim.epochs_warmup * self.steps_per_epoch
    )
    with strategy.scope():
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
      self.coupling = (
        sides_lib.Coupling(self.glow_config, config, self.learning_rate, beta2)
        if config.loss.coupled and len(self.keys) == 2
        else None
      )
      self.sides = sides_lib.make_sides(
        self.keys, self.glow_config, config, self.learning_rate, beta2, self.coupling
      )
    self.steps = step_lib.Steps(
      self.sides, config, self.glow_config, strategy, self.step, self.batch_train, self.coupling
    )
    self._train_step = self.steps.train_step
    # The warm start: the same sides, optimizers and step counter, each side's own bits/dim.
    self.warm_steps = None
    if config.warm_start_steps:
      if config.warm_start_steps % self.steps_per_epoch:
        raise ConfigError(
          f"--warm_start_steps={config.warm_start_steps}: must be whole epochs of "
          f"{self.steps_per_epoch} steps (an epoch's logged means would mix two objectives)"
        )
      self.warm_steps = step_lib.Steps(
        self.sides, config.alone(), self.glow_config, strategy, self.step, self.batch_train
      )

    parts = {"step": self.step}
    for side in self.sides:
      parts[f"model_{side.lower}"] = side.checkpoint
      parts[f"optimizer_{side.lower}"] = side.optimizer
      parts[f"best_loss_{side.lower}"] = side.best_loss
    if self.coupling:
      parts["coupled"] = self.coupling.checkpoint
      parts["optimizer_coupled"] = self.coupling.optimizer
    # The running means of the epoch at a mid-epoch save (`outputs.progress_state`), so that a
    # resumed run's epoch line covers the whole epoch. Not distributed: every worker holds it.
    self.progress = tf.Variable("", dtype=tf.string, trainable=False, name="epoch_progress")
    # A checkpoint written before the running means were saved restores without them.
    self._checkpoint_without_progress = tf.train.Checkpoint(**parts)
    self.checkpoint = tf.train.Checkpoint(**parts, epoch_progress=self.progress)
    self.logdir = config.logdir
    # Every worker must save (MultiWorkerMirroredStrategy); only the chief's files are kept.
    write_root = self.logdir if self.is_chief else os.path.join(self.logdir, f".worker_{task_id}")
    self._scratch = None if self.is_chief else write_root
    self.checkpoint_dir = run_dir.checkpoint_dir(self.logdir)
    self.manager = tf.train.CheckpointManager(
      self.checkpoint, run_dir.checkpoint_dir(write_root), max_to_keep=config.keep_checkpoints
    )
    self.best_managers = {
      side.key: tf.train.CheckpointManager(
        side.checkpoint,
        run_dir.best_dir(write_root, side.key),
        max_to_keep=1,
        checkpoint_name=run_dir.best_checkpoint_name(side.key),
      )
      for side in self.sides
    }
    self._translation_pairs = None
    # A two-sided run's EMA models and EMA prior as one pair: what its translations come from.
    self.ema_pair = None
    if len(self.sides) == 2:
      prior = self.coupling.ema if self.coupling else None
      self.ema_pair = pair_lib.ImagePair(*(side.ema.glow for side in self.sides), prior)
    self.evaluator = evaluator_lib.Evaluator(self)
    self.checks = finite.FiniteChecks(
      self.sides,
      self.coupling,
      self.steps,
      self.translation_pairs,
      self.glow_config.n_bits_x,
      self.checkpoint_dir,
    )
    self._last_save = time.time()

  # -----------------------------------------------------------------------------------------------
  # Data.

  def dataset(
    self,
    split: str,
    batch_size: int,
    *,
    shuffle: bool,
    repeat: bool,
    dal: int = 0,
    seed: int = 0,
    input_context=None,
  ) -> tf.data.Dataset:
    ds = self._make_dataset(
      self.problem,
      split,
      batch_size,
      shuffle=shuffle,
      repeat=repeat,
      dal=dal,
      seed=seed,
      input_context=input_context,
    )
    if self.config.data.flip_color:
      ds = ds.map(lambda b: {**b, "image_b": 255 - b["image_b"]})
    return ds

  def test_dataset(self, batch_size: int) -> tf.data.Dataset:
    """Global test batches of `batch_size` holding exactly --n_test images (all: -1).

    One pipeline reads the split in order (every worker reads the same batches); `evaluate`
    splits each batch over the replicas itself, so no replica's part is ever empty.
    """
    ds = self.dataset("test", batch_size, shuffle=False, repeat=False)
    n_test = self.config.data.n_test
    if n_test > 0:
      ds = ds.unbatch().take(n_test).batch(batch_size)
    return ds

  def epoch_seed(self, epoch: int) -> int:
    """The data seed of training epoch `epoch` (1-based): a hash of (--seed, epoch)."""
    return int(np.random.SeedSequence([self.config.seed, epoch]).generate_state(1)[0])

  def train_iterator(self, start: int = 0):
    """Distributed iterator over per-replica training batches from global step `start` on.

    The data order is a function of (--seed, step) only, so a resumed run reads what an
    uninterrupted one would: training epoch e (steps (e - 1) * spe + 1 ... e * spe) reads a
    stream of its own, shuffled and augmented with `epoch_seed(e)`, and this iterator starts
    `start mod spe` steps into the stream of the epoch holding step start + 1. It keeps
    going past that epoch's end (tests step it freely); `fit` switches to the next epoch's
    stream at every epoch boundary. Skipping reads and discards at most one epoch of batches.
    """
    per_replica = self.batch_train // self.n_replicas
    config = self.config
    epoch, position = divmod(start, self.steps_per_epoch)

    def make(ctx):
      ds = self.dataset(
        "train",
        per_replica,
        shuffle=True,
        repeat=True,
        dal=config.data.dal,
        seed=self.epoch_seed(epoch + 1),
        input_context=ctx,
      )
      # Each step takes one batch per local replica from this pipeline.
      local_replicas = ctx.num_replicas_in_sync // ctx.num_input_pipelines
      return ds.skip(position * local_replicas) if position else ds

    return iter(self.strategy.distribute_datasets_from_function(make))

  # -----------------------------------------------------------------------------------------------
  # Start: resume, or initialise and restore single models.

  def restore_or_initialize(self) -> int:
    """Returns the step to continue from (0 for a fresh run)."""
    latest = tf.train.latest_checkpoint(self.checkpoint_dir)
    if latest:
      self.check_same_architecture()
      names = [name for name, _ in tf.train.list_variables(latest)]
      root = self.checkpoint
      if not any(name.startswith("epoch_progress/") for name in names):
        root = self._checkpoint_without_progress
        self.progress.assign("")
      root.restore(latest).assert_existing_objects_matched()
      logging.info("resumed from %s at step %d", latest, int(self.step.read_value()))
      if self.config.restore_path_a or self.config.restore_path_b:
        logging.warning("--restore_path_A/B ignored: resuming the run in %s", self.logdir)
      return int(self.step.read_value())
    self.initialize()
    for side, path in zip(self.sides, (self.config.restore_path_a, self.config.restore_path_b)):
      if path:
        side.restore(path, self.strategy)
    return 0

  def check_same_architecture(self) -> None:
    """Refuses to resume a run folder whose config.json has another model or other sides."""
    try:
      saved = run_dir.read_config(self.logdir)
    except (FileNotFoundError, ValueError):
      return  # an older folder without config.json: the checkpoint restore checks the shapes
    if saved.keys != self.keys:
      raise ConfigError(
        f"--joint_train={len(self.keys) > 1}: the run in {self.logdir} trains sides "
        f"{'+'.join(saved.keys)}, this command {'+'.join(self.keys)}; use another --logdir"
      )
    for field in ARCHITECTURE_FIELDS:
      was, now = getattr(saved.config.model, field), getattr(self.glow_config, field)
      if was != now:
        flag = {"image_shape": "image_size", "n_classes": "ycond"}.get(field) or FIELD_FLAGS[
          f"model.{field}"
        ]
        if field == "n_classes":  # --ycond: classes or none
          was, now = was > 0, now > 0
        raise ConfigError(
          f"--{flag}={_show(now)}: the run in {self.logdir} was trained with --{flag}="
          f"{_show(was)}; resume with the same value or use another --logdir"
        )
    # The coupled prior's variable exists only in coupled runs, its size set by per_dimension.
    was, now = saved.config.loss, self.config.loss
    changed = None
    if was.coupled != now.coupled:
      changed = ("code_loss_type", was.code_loss_type, now.code_loss_type)
    elif now.coupled and was.coupled_per_dimension != now.coupled_per_dimension:
      changed = ("coupled_per_dimension", was.coupled_per_dimension, now.coupled_per_dimension)
    if changed:
      flag, was_value, now_value = changed
      raise ConfigError(
        f"--{flag}={_show(now_value)}: the run in {self.logdir} was trained with --{flag}="
        f"{_show(was_value)}; resume with the same value or use another --logdir"
      )

  def initialize(self) -> None:
    """Data-dependent init of both models on the same n_batch_init images, cross-replica."""
    ds = self.dataset(
      "train", self.batch_init, shuffle=True, repeat=True, dal=0, seed=self.config.seed
    )
    batch = next(iter(ds))
    labels = self.steps.labels(batch)
    with self.strategy.scope():
      for i, side in enumerate(self.sides):
        x = self.steps.noisy(batch[side.image_key], streams.Stream.INIT_NOISE, i, 0)
        side.model.glow.initialize(x, labels)
        side.polyak.reset()
      if self.coupling:
        self.coupling.polyak.reset()
    logging.info("data-dependent init on %d images", int(batch["image_a"].shape[0]))

  def restore_side(self, side: sides_lib.Side, path: str) -> str:
    return side.restore(path, self.strategy)

  # -----------------------------------------------------------------------------------------------
  # The loop.

  def train_step(self, iterator) -> dict[str, float]:
    """One optimisation step of every side on the next global batch; returns its metrics."""
    return {k: float(v) for k, v in self._step_function()(iterator).items()}

  def _step_function(self):
    """The warm start's step (each side alone) before --warm_start_steps, then the run's."""
    if self.warm_steps and int(self.step.read_value()) < self.config.warm_start_steps:
      return self.warm_steps.train_step
    return self._train_step

  def fit(self) -> dict[str, float]:
    """Trains until --epochs or --train_steps; returns the last epoch's train metrics."""
    config = self.config
    start = self.restore_or_initialize()
    spe = self.steps_per_epoch
    outputs = None
    if self.is_chief:
      run_dir.write_config(self.logdir, config, self.keys)
      outputs = outputs_lib.Outputs(
        self.logdir, config.hyperparameters(), self.keys, self.batch_train, start // spe
      )
      outputs.write_hparams()
    if start >= self.max_steps:
      logging.info("nothing to do: step %d >= %d", start, self.max_steps)
      return {}
    iterator = self.train_iterator(start)
    progress = outputs_lib.Progress(start, self.max_steps, spe, self.batch_train, config.log_steps)
    progress.interactive = progress.interactive and self.is_chief
    # Resumed mid-epoch: the epoch's (and the log window's) sums and seconds before the save.
    epoch_mean, window_mean = outputs_lib.resume_means(self.progress.numpy().decode(), start)
    self._last_save = time.time()
    step, last = start, {}
    while step < self.max_steps:
      if step % spe == 0 and step > start:
        iterator = self.train_iterator(step)  # the next epoch's own data stream
      metrics = self._step_function()(iterator)
      step += 1
      values = {k: float(v) for k, v in metrics.items()}
      bad = {k: v for k, v in values.items() if not math.isfinite(v)}
      if bad:
        raise NonFiniteLossError(
          f"non-finite loss at step {step} (epoch {math.ceil(step / spe)}): {bad}; training "
          f"stopped, {self.last_good_checkpoint()}"
        )
      epoch_mean.add(values)
      window_mean.add(values)
      if self.is_chief:
        progress.update(step, values)
      end_of_epoch = step % spe == 0 or step == self.max_steps
      if step % config.log_steps == 0 or end_of_epoch:
        rate = window_mean.count * self.batch_train / max(window_mean.seconds(), 1e-9)
        if outputs:
          outputs.train_scalars(
            step, window_mean.result(), float(self.learning_rate(step - 1)), rate
          )
        window_mean = outputs_lib.Mean()
      if end_of_epoch:
        epoch = math.ceil(step / spe)
        last = epoch_mean.result()
        final = step == self.max_steps
        # A run stopped inside an epoch (--train_steps) keeps the epoch's sums, so that a rerun
        # with a higher --train_steps logs the whole epoch; an epoch's end starts afresh.
        state = outputs_lib.progress_state(step, epoch_mean, window_mean) if step % spe else ""
        if outputs:
          outputs.train_logs(epoch, step, epoch_mean.seconds(), last)
        if epoch % config.epochs_full_valid == 0 or final:
          self.validate(epoch, step, outputs)
        # Glow also drew the grids of epochs 1 and 10, to see a run take shape early.
        if outputs and (epoch in (1, 10) or epoch % config.epochs_full_sample == 0 or final):
          outputs.grids(epoch, step, self.sample_grids(config.n_sample), self.translation_grids())
        self.save(state)
        # Validation, images and checkpoints do not count against the training rate.
        epoch_mean, window_mean = outputs_lib.Mean(), outputs_lib.Mean()
      elif self._checkpoint_due(step):
        began = time.time()
        self.save(outputs_lib.progress_state(step, epoch_mean, window_mean))
        for mean in (epoch_mean, window_mean):
          mean.pause(time.time() - began)
    return last

  def _checkpoint_due(self, step: int) -> bool:
    """Whether --checkpoint_steps or --checkpoint_secs asks for a save after `step`.

    Every worker of a multi-worker run must save at the same step (saving is collective), so
    there the chief's clock decides, broadcast every --log_steps steps.
    """
    config = self.config
    if config.checkpoint_steps and step % config.checkpoint_steps == 0:
      return True
    if not config.checkpoint_secs:
      return False
    late = time.time() - self._last_save >= config.checkpoint_secs
    if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
      return late
    if step % config.log_steps:
      return False
    flag = tf.constant(float(late and self.is_chief))
    votes = self.strategy.run(lambda: tf.identity(flag))
    return float(self.strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)) > 0

  def last_good_checkpoint(self) -> str:
    """What a rerun resumes from, for error messages."""
    return self.checks.last_good_checkpoint()

  def check_finite_variables(self, step: int) -> None:
    self.checks.variables(step)

  def check_finite_outputs(self, step: int) -> None:
    self.checks.outputs(step)

  def check_savable(self, step: int) -> None:
    """What every save checks first: finite variables, then finite outputs of them."""
    self.checks.savable(step)

  def evaluate(self) -> dict[str, float]:
    """Means over the test set (EMA models): loss_x, bits_per_dim_x, code_loss, ..."""
    return self.evaluator.evaluate()

  def validate(self, epoch: int, step: int, outputs=None) -> dict[str, float]:
    """Evaluates, saves each side's model when its test loss improved, logs the results."""
    results = self.evaluator.evaluate()
    bad = {k: v for k, v in results.items() if not math.isfinite(v)}
    if bad:
      raise NonFiniteLossError(
        f"non-finite evaluation at step {step} (epoch {epoch}): {bad}; nothing saved, training "
        f"stopped, {self.last_good_checkpoint()}"
      )
    for side in self.sides:
      loss = results[f"loss_{side.lower}"]
      if loss < float(side.best_loss.read_value()):
        self.check_savable(step)
        side.best_loss.assign(loss)
        self.best_managers[side.key].save(checkpoint_number=step)
        self._drop_scratch()
    results.update(self.evaluator.sample_scores())
    if outputs:
      outputs.eval_logs(epoch, step, results)
    logging.info(
      "epoch %d step %d eval: %s",
      epoch,
      step,
      ", ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())),
    )
    return results

  def save(self, progress: str = "") -> None:
    """A training checkpoint of the current step, once `check_savable` passed.

    Args:
      progress: the running means of the epoch (`outputs.progress_state`), "" at its end.
    """
    step = int(self.step.read_value())
    self.check_savable(step)
    self.progress.assign(progress)
    self.manager.save(checkpoint_number=step)
    self._last_save = time.time()
    self._drop_scratch()

  def _drop_scratch(self) -> None:
    if self._scratch:
      shutil.rmtree(self._scratch, ignore_errors=True)

  # -----------------------------------------------------------------------------------------------
  # Images and inference (EMA models).

  def sample_grids(self, n: int) -> dict[str, list[np.ndarray]]:
    """{side key: one uint8 `[n, H, W, C]` batch per temperature} from the EMA models."""
    return outputs_lib.sample_grids(self.sides, n, self.glow_config.n_classes, self.config.seed)

  def translation_pairs(self):
    """A fixed batch of test pairs (first N_TRANSLATE of the test split)."""
    if self._translation_pairs is None:
      ds = self.dataset("test", N_TRANSLATE, shuffle=False, repeat=False)
      self._translation_pairs = next(iter(ds))
    return self._translation_pairs

  def translate(self, images, source, target, labels=None) -> np.ndarray:
    """The EMA pair's translation at T = 0, uint8 -> uint8: decode_target(rho *
    encode_source(images)), rho of the EMA prior (1 for a pair that is not coupled)."""
    direction = f"{source.lower}2{target.lower}"
    return self.ema_pair.translate(images, direction, labels=labels).numpy()

  def translation_grids(self) -> dict[str, np.ndarray]:
    """{"A2B": grid, "B2A": grid} of the fixed test pairs; rows: source, translation, ground
    truth ({} for a run of one side)."""
    if self.ema_pair is None:
      return {}
    batch = self.translation_pairs()
    return outputs_lib.translation_grids(self.ema_pair, batch, self.steps.labels(batch))

  def load_for_inference(self) -> list[str]:
    """Each side from --restore_path_X, else its best checkpoint, else the last training one."""
    paths = {"A": self.config.restore_path_a, "B": self.config.restore_path_b}
    return inference.restore_sides(self.sides, paths, self.logdir, self.strategy)

  def infer(self) -> dict[str, str]:
    """--inference (`inference.run`): z_A.npy, z_B.npy (codes of the test set, EMA weights),
    A2B.png, B2A.png; a single-domain run z_A.npy and Glow's own x.npy and z.npy."""
    return inference.run(self)
