"""Typed configuration of a training run: frozen dataclasses, checked before any TensorFlow work.

`glow-train`'s flags map one to one onto these fields (`train.py` reads the flags, nothing else
does). Every check raises `ConfigError` (a `ValueError`) whose message starts with the flag at
fault, e.g. `--n_batch_train=10: must be divisible by the 4 replicas`, so a bad command line
fails in the first second rather than after the data is loaded or the first epoch has run.

Checks that need the data set (image size, classes, pairing) or the device count are methods
(`check_problem`, `check_replicas`) run as soon as those are known, still before the model is
built.
"""

from collections.abc import Mapping
import dataclasses
import math

from glow_tf2.config import COUPLINGS
from glow_tf2.config import PERMUTATIONS
from glow_tf2.config import GlowConfig

OPTIMIZERS = ("adam", "adamax")
CODE_LOSS_TYPES = ("code_last", "code_all")
CODE_LOSS_FNS = ("l2", "l1")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
# The original's --code_loss_type / --code_loss_range spellings.
CODE_LOSS_TYPE_ALIASES = {"last": "code_last", "all": "code_all"}
# Sample grids are drawn at these temperatures (Glow's own choice).
TEMPERATURES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class ConfigError(ValueError):
  """A bad flag value or combination; the message names the flag."""


def parse_choice(
  flag: str,
  value,
  choices,
  codes: Mapping[int, str] | None = None,
  aliases: Mapping[str, str] | None = None,
) -> str:
  """A word choice, also accepting the original's integer codes ("2" -> "conv")."""
  text = str(value).strip().lower()
  if codes is not None and text.lstrip("-").isdigit() and int(text) in codes:
    return codes[int(text)]
  if aliases and text in aliases:
    return aliases[text]
  if text in choices:
    return text
  accepted = list(choices) + ([str(k) for k in codes] if codes else [])
  raise ConfigError(f"--{flag}={value}: must be one of {', '.join(accepted)}")


def _require(condition: bool, flag: str, value, why: str) -> None:
  if not condition:
    raise ConfigError(f"--{flag}={value}: {why}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the images come from.

  Attributes:
    problem: a problem name known to `glow_tf2.problems` (mnist, edges2shoes, ...).
    data_dir: folder of the problem's files (None: the problem's default location).
    tfds_data_dir: TFDS cache folder for TFDS-backed problems.
    category: LSUN category; folded into the problem name ("lsun_<category>") when set.
    channels: 1 or 3 colour channels (MNIST can be trained on 1).
    image_size: -1 for the problem's own size, else resize to this (square).
    crop_size: 0 for whole images, else read their centre crop_size x crop_size (28 gives back
      the 28x28 MNIST and Fashion-MNIST images that the embedded sets pad to 32x32).
    dal: data augmentation level (0 off; 1 random shifts of up to 10%, same for both sides).
    n_train: training images per epoch (the original's --n_train).
    n_test: test images to evaluate (-1: the problem's whole test split).
    flip_color: invert the colours of domain B (255 - x) as it is read.
  """

  problem: str = "mnist"
  data_dir: str | None = None
  tfds_data_dir: str | None = None
  category: str = ""
  channels: int = 3
  image_size: int = -1
  crop_size: int = 0
  dal: int = 1
  n_train: int = 50000
  n_test: int = -1
  flip_color: bool = False

  def __post_init__(self):
    _require(bool(self.problem), "problem", self.problem, "must name a problem")
    _require(self.channels in (1, 3), "channels", self.channels, "must be 1 or 3")
    _require(
      self.image_size == -1 or self.image_size >= 2,
      "image_size",
      self.image_size,
      "must be -1 (the problem's size) or >= 2",
    )
    _require(self.crop_size >= 0, "crop_size", self.crop_size, "must be 0 (no crop) or >= 1")
    _require(self.dal >= 0, "dal", self.dal, "must be >= 0")
    _require(self.n_train >= 1, "n_train", self.n_train, "must be >= 1")
    _require(
      self.n_test == -1 or self.n_test >= 1,
      "n_test",
      self.n_test,
      "must be -1 (the whole test split) or >= 1",
    )

  @property
  def problem_name(self) -> str:
    return f"lsun_{self.category}" if self.problem == "lsun" and self.category else self.problem


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The architecture shared by both models; `glow_config` adds what only the data knows."""

  n_levels: int = 3
  depth: int = 32
  width: int = 512
  permutation: str = "conv"
  coupling: str = "additive"
  learntop: bool = False
  ycond: bool = False
  n_bits_x: int = 8
  gradient_checkpointing: bool = True

  def __post_init__(self):
    _require(self.n_levels >= 1, "n_levels", self.n_levels, "must be >= 1")
    _require(self.depth >= 1, "depth", self.depth, "must be >= 1")
    _require(self.width >= 1, "width", self.width, "must be >= 1")
    _require(
      self.permutation in PERMUTATIONS,
      "flow_permutation",
      self.permutation,
      f"must be one of {', '.join(PERMUTATIONS)}",
    )
    _require(
      self.coupling in COUPLINGS,
      "flow_coupling",
      self.coupling,
      f"must be one of {', '.join(COUPLINGS)}",
    )
    _require(1 <= self.n_bits_x <= 8, "n_bits_x", self.n_bits_x, "must be in 1..8")

  def glow_config(self, image_shape: tuple[int, int, int], n_classes: int) -> GlowConfig:
    try:
      return GlowConfig(
        image_shape=tuple(image_shape),
        n_levels=self.n_levels,
        depth=self.depth,
        width=self.width,
        permutation=self.permutation,
        coupling=self.coupling,
        learntop=self.learntop,
        n_classes=n_classes if self.ycond else 0,
        n_bits_x=self.n_bits_x,
      )
    except ValueError as e:
      raise ConfigError(f"--image_size/--n_levels: {e}") from e


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """Optimizer, schedule, weight decay and Polyak averaging.

  Attributes:
    optimizer: "adam" | "adamax" (Keras's).
    lr: peak learning rate, reached linearly over `epochs_warmup` epochs.
    beta1: first-moment decay.
    polyak_epochs: the EMA (and second-moment) horizon in epochs:
      beta2 = 1 - 1 / (steps_per_epoch * polyak_epochs).
    weight_decay: multiplicative, applied after every update (1.0 = off).
    epochs_warmup: epochs of linear warmup (0 = none).
  """

  optimizer: str = "adamax"
  lr: float = 0.001
  beta1: float = 0.9
  polyak_epochs: float = 1.0
  weight_decay: float = 1.0
  epochs_warmup: float = 10.0

  def __post_init__(self):
    _require(
      self.optimizer in OPTIMIZERS,
      "optimizer",
      self.optimizer,
      f"must be one of {', '.join(OPTIMIZERS)}",
    )
    _require(self.lr > 0 and math.isfinite(self.lr), "lr", self.lr, "must be > 0")
    _require(0.0 <= self.beta1 < 1.0, "beta1", self.beta1, "must be in [0, 1)")
    _require(self.polyak_epochs > 0, "polyak_epochs", self.polyak_epochs, "must be > 0")
    _require(
      0.0 < self.weight_decay <= 1.0,
      "weight_decay",
      self.weight_decay,
      "is multiplicative: must be in (0, 1], 1.0 = off",
    )
    _require(self.epochs_warmup >= 0, "epochs_warmup", self.epochs_warmup, "must be >= 0")

  def beta2(self, steps_per_epoch: int) -> float:
    return 1.0 - 1.0 / (steps_per_epoch * self.polyak_epochs)


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """The pix2pix-flow objective: loss_X = mle_loss_scale * bits_x_X + code_loss_scale * code_loss.

  Attributes:
    joint_train: add the code loss to both models' losses (else it is only logged).
    code_loss_type: "code_last" (top block of eps) | "code_all" (every dimension).
    code_loss_fn: "l2" (mean squared difference) | "l1" (mean absolute difference).
    code_loss_scale, mle_loss_scale: weights of the two terms.
    translation_loss_scale: weight of the translation loss, the pixel distance (code_loss_fn)
      of each side's translation to its partner (what the original's `B_all` meant to do, see
      `objective.translation_distance`); 0 = off. Only with joint_train.
    weight_y: weight of the class-prediction loss (bits_y) of a --ycond model.
  """

  joint_train: bool = False
  code_loss_type: str = "code_last"
  code_loss_fn: str = "l2"
  code_loss_scale: float = 1.0
  mle_loss_scale: float = 1.0
  translation_loss_scale: float = 0.0
  weight_y: float = 0.0

  def __post_init__(self):
    _require(
      self.code_loss_type in CODE_LOSS_TYPES,
      "code_loss_type",
      self.code_loss_type,
      f"must be one of {', '.join(CODE_LOSS_TYPES)}",
    )
    _require(
      self.code_loss_fn in CODE_LOSS_FNS,
      "code_loss_fn",
      self.code_loss_fn,
      f"must be one of {', '.join(CODE_LOSS_FNS)}",
    )
    _require(self.code_loss_scale >= 0, "code_loss_scale", self.code_loss_scale, "must be >= 0")
    _require(self.mle_loss_scale >= 0, "mle_loss_scale", self.mle_loss_scale, "must be >= 0")
    _require(
      self.translation_loss_scale >= 0,
      "translation_loss_scale",
      self.translation_loss_scale,
      "must be >= 0",
    )
    _require(self.weight_y >= 0, "weight_y", self.weight_y, "must be >= 0")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """A whole run. Batch sizes are global (summed over every replica of every worker).

  Attributes:
    logdir: every output goes here; rerunning with the same logdir resumes.
    n_batch_train / n_batch_test: global batch sizes; n_batch_init: images for the
      data-dependent init. With images larger than `anchor_size`, the batch sizes are scaled by
      (anchor_size / image_size)**2 as in the original.
    epochs: stop after this many epochs; train_steps: or after this many steps (0 = no limit).
    epochs_full_valid / epochs_full_sample: validation / sample grids every so many epochs.
    n_sample: images per sample grid.
    inference: do not train; write z_A.npy, z_B.npy, A2B.png, B2A.png from the best weights.
    restore_path_a / _b: a checkpoint (a model file or a training checkpoint) to restore only
      that model's weights from.
    strategy: "auto" | "one_device" | "mirrored" | "multi_worker" (TF_CONFIG).
    num_cpu_devices: split the CPU into this many logical devices (0: leave it alone).
    jit_compile: XLA-compile the training step.
    intra_op_threads / inter_op_threads: TensorFlow's thread pools (0 = its default); see
      `distribute.configure_threads`.
    branches: run each replica's batch as this many independent sub-batches
      (`Glow(branches=...)`).
    log_steps: a plain progress line every so many steps when stdout is not a terminal.
    keep_checkpoints: training checkpoints kept by the CheckpointManager.
  """

  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  optim: OptimConfig = OptimConfig()
  loss: LossConfig = LossConfig()
  logdir: str = "./logs"
  seed: int = 0
  n_batch_train: int = 64
  n_batch_test: int = 50
  n_batch_init: int = 256
  anchor_size: int = 32
  epochs: int = 1000000
  train_steps: int = 0
  epochs_full_valid: int = 5
  epochs_full_sample: int = 5
  n_sample: int = 64
  inference: bool = False
  restore_path_a: str = ""
  restore_path_b: str = ""
  strategy: str = "auto"
  num_cpu_devices: int = 0
  jit_compile: bool = False
  intra_op_threads: int = 0
  inter_op_threads: int = 0
  branches: int = 1
  verbose: bool = False
  log_steps: int = 100
  keep_checkpoints: int = 3

  def __post_init__(self):
    _require(bool(self.logdir), "logdir", self.logdir, "must not be empty")
    _require(self.n_batch_train >= 1, "n_batch_train", self.n_batch_train, "must be >= 1")
    _require(self.n_batch_test >= 1, "n_batch_test", self.n_batch_test, "must be >= 1")
    _require(
      self.n_batch_init >= 2,
      "n_batch_init",
      self.n_batch_init,
      "must be >= 2 (ActNorm's init takes a standard deviation)",
    )
    _require(self.anchor_size >= 1, "anchor_size", self.anchor_size, "must be >= 1")
    _require(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
    _require(self.train_steps >= 0, "train_steps", self.train_steps, "must be >= 0 (0 = no limit)")
    _require(
      self.epochs_full_valid >= 1, "epochs_full_valid", self.epochs_full_valid, "must be >= 1"
    )
    _require(
      self.epochs_full_sample >= 1, "epochs_full_sample", self.epochs_full_sample, "must be >= 1"
    )
    _require(self.n_sample >= 1, "n_sample", self.n_sample, "must be >= 1")
    _require(
      self.strategy in STRATEGIES,
      "strategy",
      self.strategy,
      f"must be one of {', '.join(STRATEGIES)}",
    )
    _require(self.num_cpu_devices >= 0, "num_cpu_devices", self.num_cpu_devices, "must be >= 0")
    _require(
      not (self.strategy == "one_device" and self.num_cpu_devices > 1),
      "num_cpu_devices",
      self.num_cpu_devices,
      "splits the CPU for --strategy=mirrored, not one_device",
    )
    _require(
      self.intra_op_threads >= 0,
      "intra_op_threads",
      self.intra_op_threads,
      "must be >= 0 (0 = TensorFlow's default)",
    )
    _require(
      self.inter_op_threads >= 0,
      "inter_op_threads",
      self.inter_op_threads,
      "must be >= 0 (0 = TensorFlow's default)",
    )
    _require(self.branches >= 1, "branches", self.branches, "must be >= 1")
    _require(self.log_steps >= 1, "log_steps", self.log_steps, "must be >= 1")
    _require(self.keep_checkpoints >= 1, "keep_checkpoints", self.keep_checkpoints, "must be >= 1")
    if self.jit_compile and self.model.permutation == "conv":
      raise ConfigError(
        "--jit_compile: XLA has no log-determinant kernel for "
        "--flow_permutation=conv; use lu (the same 1x1 conv, LU-parameterised), "
        "reverse or shuffle"
      )
    if self.loss.weight_y > 0:
      _require(
        self.model.ycond,
        "weight_y",
        self.loss.weight_y,
        "needs --ycond (the class-prediction head is only there in a class-conditional model)",
      )

  # ---------------------------------------------------------------------------------------------
  # Checks once the data set and the devices are known.

  def check_problem(self, problem) -> GlowConfig:
    """Checks the run against the problem's data; returns the model's GlowConfig."""
    if self.loss.joint_train and not problem.paired:
      raise ConfigError(f"--joint_train: problem {problem.name!r} is not paired (no B images)")
    if self.model.ycond and not problem.n_classes:
      raise ConfigError(f"--ycond: problem {problem.name!r} has no class labels")
    if self.data.flip_color and not problem.paired:
      raise ConfigError(f"--flip_color: problem {problem.name!r} has no domain B to invert")
    return self.model.glow_config(problem.image_shape, int(problem.n_classes or 0))

  def batch_scale(self, image_size: int) -> float:
    """The original's anchoring: smaller batches for images larger than anchor_size."""
    return min(1.0, (self.anchor_size / image_size) ** 2)

  def global_batches(self, image_size: int) -> tuple[int, int, int]:
    """(train, test, init) global batch sizes after anchoring."""
    scale = self.batch_scale(image_size)
    return tuple(
      max(1, int(b * scale)) for b in (self.n_batch_train, self.n_batch_test, self.n_batch_init)
    )

  def check_replicas(self, n_replicas: int, image_size: int) -> None:
    train, test, _ = self.global_batches(image_size)
    for flag, batch in (("n_batch_train", train), ("n_batch_test", test)):
      if batch % n_replicas:
        raise ConfigError(
          f"--{flag}={getattr(self, flag)}: the global batch {batch} must be "
          f"divisible by the {n_replicas} replicas"
        )

  def steps_per_epoch(self, image_size: int) -> int:
    return max(1, math.ceil(self.data.n_train / self.global_batches(image_size)[0]))

  def hyperparameters(self) -> dict:
    """Every setting as one flat dict (the first line of the JSON logs, the hparams plugin)."""
    flat = {}
    for name, value in dataclasses.asdict(self).items():
      if isinstance(value, dict):
        flat.update(value)
      else:
        flat[name] = value
    return flat
