"""Joint training of pix2pix-flow's two Glow models (or one, as plain Glow) under tf.distribute.

A `Trainer` is a run: what users, tests and tools hold. It builds the run's parts under the
strategy and keeps its data, and each concern has a room of its own, as in Orbit:

  sides.py       each side's model, EMA model, optimizer and best loss; the coupled prior
  step.py        the compiled training and evaluation steps (the runner), and the warm start's
  controller.py  the order of a run: init or resume, the loop and its cadence of logs,
                 validation, grids and checkpoints, the best-model saves, the warm-start switch
  finite.py      nothing non-finite is saved: the checks before every save, NonFiniteLossError
  evaluator.py   the test-set means under any replica count, and the judged sample scalars
  outputs.py     JSON logs, TensorBoard, progress, and the sample and translation grids
  inference.py   --inference: the test codes and translation grids of the loaded models

The Trainer's methods (`fit`, `train_step`, `evaluate`, `validate`, `save`, `sample_grids`,
`translation_grids`, `infer`, ...) hand over to these. What it keeps is the run's data: the
datasets of a split (`dataset`, `test_dataset`), the training stream of a step
(`train_iterator`: the data of step s is a function of (--seed, s), which is what makes a resumed
run exact), the fixed test pairs of the grids, and the data-dependent init of the models.
"""

from absl import logging
import numpy as np
import tensorflow as tf

from glow_tf2 import pair as pair_lib
from glow_tf2.config import ConfigError
from glow_tf2.config import TrainConfig
from glow_tf2.flows import precision
from glow_tf2.train import controller as controller_lib
from glow_tf2.train import distribute
from glow_tf2.train import evaluator as evaluator_lib
from glow_tf2.train import finite
from glow_tf2.train import inference
from glow_tf2.train import loss_scale as loss_scale_lib
from glow_tf2.train import optim
from glow_tf2.train import outputs as outputs_lib
from glow_tf2.train import sides as sides_lib
from glow_tf2.train import step as step_lib
from glow_tf2.train import streams

# Names held by users of this module from before the split.
NonFiniteLossError = finite.NonFiniteLossError
pad_batch = evaluator_lib.pad_batch


class Trainer:
  """Builds the sides under `strategy`; trains, validates and infers through its parts.

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
    self.is_chief, _, self.task_id = distribute.worker_identity(strategy)
    self.ycond = self.glow_config.n_classes > 0
    self.keys = ("A", "B") if problem.paired else ("A",)
    self.logdir = config.logdir

    beta2 = config.optim.beta2(self.steps_per_epoch)
    ema_decay = config.optim.ema_decay(self.steps_per_epoch)
    self.learning_rate = optim.LinearWarmup(
      config.optim.lr,
      config.optim.epochs_warmup * self.steps_per_epoch,
      config.warm_start_steps,
      config.optim.joint_lr,
    )
    with strategy.scope():
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
      self.coupling = (
        sides_lib.Coupling(self.glow_config, config, self.learning_rate, beta2, ema_decay)
        if config.loss.coupled and len(self.keys) == 2
        else None
      )
      self.sides = sides_lib.make_sides(
        self.keys, self.glow_config, config, self.learning_rate, beta2, ema_decay, self.coupling
      )
      # float16 gradients underflow without it (`loss_scale.py`); saved with the run.
      self.loss_scale = (
        loss_scale_lib.DynamicLossScale()
        if precision.needs_loss_scale(self.glow_config.precision)
        else None
      )
    self.steps = step_lib.Steps(
      self.sides,
      config,
      self.glow_config,
      strategy,
      self.step,
      self.batch_train,
      self.coupling,
      self.loss_scale,
    )
    # The warm start: the same sides, optimizers and step counter, each side's own bits/dim.
    self.warm_steps = None
    if config.warm_start_steps:
      if config.warm_start_steps % self.steps_per_epoch:
        raise ConfigError(
          f"--warm_start_steps={config.warm_start_steps}: must be whole epochs of "
          f"{self.steps_per_epoch} steps (an epoch's logged means would mix two objectives)"
        )
      self.warm_steps = step_lib.Steps(
        self.sides,
        config.alone(),
        self.glow_config,
        strategy,
        self.step,
        self.batch_train,
        loss_scale=self.loss_scale,
      )
    # A two-sided run's EMA models and EMA prior as one pair: what its translations come from.
    self.ema_pair = None
    if len(self.sides) == 2:
      prior = self.coupling.ema if self.coupling else None
      self.ema_pair = pair_lib.ImagePair(*(side.ema.glow for side in self.sides), prior)
    self._translation_pairs = None
    self.evaluator = evaluator_lib.Evaluator(self)
    self.controller = controller_lib.Controller(self, self.evaluator)

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

  def translation_pairs(self):
    """A fixed batch of test pairs (the first `outputs.N_TRANSLATE` of the test split): the
    translation grids' columns and the images every save checks the outputs on."""
    if self._translation_pairs is None:
      ds = self.dataset("test", outputs_lib.N_TRANSLATE, shuffle=False, repeat=False)
      self._translation_pairs = next(iter(ds))
    return self._translation_pairs

  # -----------------------------------------------------------------------------------------------
  # The models: initialise, restore.

  def initialize(self) -> None:
    """Data-dependent init of both models on the same n_batch_init images, cross-replica.

    Run once, eagerly, on `n_batch_init` images (the same on every replica and worker); the
    EMA models then start from the initialised weights.
    """
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

  def restore_or_initialize(self) -> int:
    """Resumes from the run's last checkpoint, else initialises; returns the step to continue
    from (0 for a fresh run). See `controller.Controller.restore_or_initialize`."""
    return self.controller.restore_or_initialize()

  def check_same_architecture(self) -> None:
    self.controller.check_same_architecture()

  def load_for_inference(self) -> list[str]:
    """Each side from --restore_path_X, else its best checkpoint, else the last training one."""
    paths = {"A": self.config.restore_path_a, "B": self.config.restore_path_b}
    return inference.restore_sides(self.sides, paths, self.logdir, self.strategy)

  # -----------------------------------------------------------------------------------------------
  # Training, validation and saves (`controller.py`, `evaluator.py`, `finite.py`).

  def train_step(self, iterator) -> dict[str, float]:
    """One optimisation step of every side on the next global batch; returns its metrics."""
    return self.controller.train_step(iterator)

  def fit(self) -> dict[str, float]:
    """Trains until --epochs or --train_steps; returns the last epoch's train metrics."""
    return self.controller.fit()

  def evaluate(self) -> dict[str, float]:
    """Means over the test set (EMA models): loss_x, bits_per_dim_x, code_loss, ..."""
    return self.evaluator.evaluate()

  def validate(self, epoch: int, step: int, outputs=None) -> dict[str, float]:
    """Evaluates, saves each side's model when its test loss improved, logs the results."""
    return self.controller.validate(epoch, step, outputs)

  def save(self, progress: str = "") -> None:
    """A training checkpoint of the current step (`Controller.save`)."""
    self.controller.save(progress)

  def check_finite_variables(self, step: int) -> None:
    self.controller.checks.variables(step)

  def check_finite_outputs(self, step: int) -> None:
    self.controller.checks.outputs(step)

  def check_savable(self, step: int) -> None:
    self.controller.checks.savable(step)

  def last_good_checkpoint(self) -> str:
    return self.controller.checks.last_good_checkpoint()

  @property
  def checkpoint(self) -> tf.train.Checkpoint:
    return self.controller.checkpoint

  @property
  def checkpoint_dir(self) -> str:
    return self.controller.checkpoint_dir

  @property
  def manager(self) -> tf.train.CheckpointManager:
    return self.controller.manager

  @property
  def best_managers(self) -> dict[str, tf.train.CheckpointManager]:
    return self.controller.save_best.managers

  # -----------------------------------------------------------------------------------------------
  # Images and inference (EMA models; `outputs.py`, `inference.py`).

  def sample_grids(self, n: int) -> dict[str, list[np.ndarray]]:
    """{side key: one uint8 `[n, H, W, C]` batch per temperature} from the EMA models."""
    return outputs_lib.sample_grids(self.sides, n, self.glow_config.n_classes, self.config.seed)

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

  def infer(self) -> dict[str, str]:
    """--inference (`inference.run`): z_A.npy, z_B.npy (codes of the test set, EMA weights),
    A2B.png, B2A.png; a single-domain run z_A.npy and Glow's own x.npy and z.npy."""
    return inference.run(self)
