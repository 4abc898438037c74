"""Every typed configuration of the package: one Glow model (`GlowConfig`) and a training run.

Configs are frozen: derived values (the data dimension, the shapes of every level, the anchored
batch sizes) are properties or methods computed from the fields, never written back. Each default
is written once, here: glow-train's flags take theirs from `TrainConfig()` (`default_of`).

A bad `GlowConfig` raises `ValueError` naming the field. The run's configs raise `ConfigError` (a
`ValueError`) whose message starts with the flag at fault, e.g. `--n_batch_train=10: must be
divisible by the 4 replicas`, so a bad command line fails in the first second rather than after
the data is loaded or the first epoch has run. Checks that need the data set (image size,
classes, pairing) or the device count are methods (`resolve`, `check_replicas`), still run
before the model is built.

Why one file of ~750 lines: issue 13 asked for every config in one place with one source for
each default; most of the length is the validation of each field and the flag <-> field table
(`FLAG_FIELDS`), which must sit beside the fields they check.
"""

from collections.abc import Mapping
import dataclasses
import math
from typing import Any

PERMUTATIONS = ("reverse", "shuffle", "conv", "lu")
COUPLINGS = ("additive", "affine")
# What the coupling networks and the priors' convolutions compute in; variables, the flow's affine
# arithmetic, log-determinants and the loss stay float32 in every case.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

# The original train.py took integers for these choices; the CLI maps them once, here.
PERMUTATION_CODES = {0: "reverse", 1: "shuffle", 2: "conv", 3: "lu"}
COUPLING_CODES = {0: "additive", 1: "affine"}


@dataclasses.dataclass(frozen=True)
class GlowConfig:
  """Architecture of one Glow flow (Kingma & Dhariwal, 2018).

  Attributes:
    image_shape: (H, W, C) of the images; C is 1 or 3; H and W divisible by 2**n_levels.
    n_levels: L, the number of scales; every level but the last ends in a split.
    depth: K, steps of flow (actnorm -> permutation -> coupling) per level.
    width: channels of the hidden layers of every coupling network.
    permutation: "reverse" | "shuffle" | "conv" (invertible 1x1 conv) | "lu" (LU-parameterised).
    coupling: "additive" | "affine".
    learntop: learn the mean and log-std of the top-level prior.
    n_classes: 0 for an unconditional model; > 0 turns on the class-conditional top prior (ycond).
    n_bits_x: bits per colour channel the images are quantised to (1..8).
    precision: "float32" | "mixed_bfloat16" | "mixed_float16": the compute type of the coupling
      networks and the priors' convolutions (variables and all flow arithmetic stay float32).
  """

  image_shape: tuple[int, int, int] = (32, 32, 3)
  n_levels: int = 3
  depth: int = 32
  width: int = 512
  permutation: str = "conv"
  coupling: str = "affine"
  learntop: bool = True
  n_classes: int = 0
  n_bits_x: int = 8
  precision: str = "float32"

  def __post_init__(self):
    shape = tuple(int(s) for s in self.image_shape)
    object.__setattr__(self, "image_shape", shape)
    if len(shape) != 3 or min(shape) < 1:
      raise ValueError(
        f"GlowConfig.image_shape must be (H, W, C) of positive ints, got {self.image_shape}"
      )
    h, w, c = shape
    if c not in (1, 3):
      raise ValueError(f"GlowConfig.image_shape: channels must be 1 or 3, got {c}")
    if not isinstance(self.n_levels, int) or self.n_levels < 1:
      raise ValueError(f"GlowConfig.n_levels must be an int >= 1, got {self.n_levels!r}")
    scale = 2**self.n_levels
    if h % scale or w % scale:
      raise ValueError(
        f"GlowConfig.image_shape {shape}: H and W must be divisible by 2**n_levels = {scale}"
      )
    if not isinstance(self.depth, int) or self.depth < 1:
      raise ValueError(f"GlowConfig.depth must be an int >= 1, got {self.depth!r}")
    if not isinstance(self.width, int) or self.width < 1:
      raise ValueError(f"GlowConfig.width must be an int >= 1, got {self.width!r}")
    if self.permutation not in PERMUTATIONS:
      raise ValueError(
        f"GlowConfig.permutation must be one of {PERMUTATIONS}, got {self.permutation!r}"
      )
    if self.coupling not in COUPLINGS:
      raise ValueError(f"GlowConfig.coupling must be one of {COUPLINGS}, got {self.coupling!r}")
    if not isinstance(self.n_classes, int) or self.n_classes < 0:
      raise ValueError(f"GlowConfig.n_classes must be an int >= 0, got {self.n_classes!r}")
    if not isinstance(self.n_bits_x, int) or not 1 <= self.n_bits_x <= 8:
      raise ValueError(f"GlowConfig.n_bits_x must be an int in [1, 8], got {self.n_bits_x!r}")
    if self.precision not in PRECISIONS:
      raise ValueError(f"GlowConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")

  @property
  def ycond(self) -> bool:
    return self.n_classes > 0

  @property
  def n_bins(self) -> int:
    return 2**self.n_bits_x

  @property
  def data_dim(self) -> int:
    """D = H * W * C, the dimension of x and of the latent eps."""
    return math.prod(self.image_shape)

  @property
  def level_shapes(self) -> tuple[tuple[int, int, int], ...]:
    """Shape (h, w, c) of the tensor the steps of flow of each level act on."""
    h, w, c = self.image_shape
    shapes = []
    for _ in range(self.n_levels):
      h, w, c = h // 2, w // 2, c * 4
      shapes.append((h, w, c))
      c //= 2  # the split keeps half the channels for the next level
    return tuple(shapes)

  @property
  def eps_shapes(self) -> tuple[tuple[int, int, int], ...]:
    """Shape of each level's standardized latent, finest level first, top level last."""
    shapes = [(h, w, c // 2) for h, w, c in self.level_shapes[:-1]]
    shapes.append(self.level_shapes[-1])
    return tuple(shapes)

  @property
  def top_dim(self) -> int:
    """Size of the last (top) block of eps: what `code_last` compares."""
    return math.prod(self.eps_shapes[-1])


# -------------------------------------------------------------------------------------------------
# A training run.

OPTIMIZERS = ("adam", "adamax")
CODE_LOSS_TYPES = ("code_last", "code_all", "coupled")
CODE_LOSS_FNS = ("l2", "l1")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
# The original's --code_loss_type / --code_loss_range spellings.
CODE_LOSS_TYPE_ALIASES = {"last": "code_last", "all": "code_all"}
# The coupled prior's least 1 - rho^2, and so its largest |rho| (`flows.coupled_prior`).
COUPLED_FLOOR = 1e-4
COUPLED_RHO_MAX = math.sqrt(1.0 - COUPLED_FLOOR)
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


# glow-train's --seed: stateless seeds, tf.data's and NumPy's all take it (and seed * 1009 + 7000
# stays far inside int64).
MAX_SEED = 2**31
# Counts (steps, batch sizes, images) must fit the int64 step variable with room to multiply.
MAX_COUNT = 2**62


def _finite(value) -> bool:
  try:
    return math.isfinite(value)
  except TypeError:
    return False


def _require(condition: bool, flag: str, value, why: str) -> None:
  if not condition:
    raise ConfigError(f"--{flag}={value}: {why}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the images come from.

  Attributes:
    problem: a problem name known to `glow_tf2.input.problems` (mnist, edges2shoes, ...).
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
    _require(self.dal in (0, 1, 2), "dal", self.dal, "must be 0 (off), 1 (shifts) or 2 (affine)")
    _require(1 <= self.n_train < MAX_COUNT, "n_train", self.n_train, "must be in [1, 2**62)")
    _require(
      self.n_test == -1 or self.n_test >= 1,
      "n_test",
      self.n_test,
      "must be -1 (the whole test split) or >= 1",
    )
    if self.category and self.problem != "lsun":
      raise ConfigError(f"--category={self.category}: only with --problem=lsun")
    if self.problem == "lsun" and not self.category:
      raise ConfigError("--problem=lsun: needs --category (bedroom, tower, church_outdoor)")

  @property
  def problem_name(self) -> str:
    return f"lsun_{self.category}" if self.problem == "lsun" and self.category else self.problem


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
    _require(_finite(self.lr) and self.lr > 0, "lr", self.lr, "must be finite and > 0")
    _require(0.0 <= self.beta1 < 1.0, "beta1", self.beta1, "must be in [0, 1)")
    _require(
      _finite(self.polyak_epochs) and self.polyak_epochs > 0,
      "polyak_epochs",
      self.polyak_epochs,
      "must be finite and > 0 (inf would make beta2 = 1: no second moment, no averaging)",
    )
    _require(
      0.0 < self.weight_decay <= 1.0,
      "weight_decay",
      self.weight_decay,
      "is multiplicative: must be in (0, 1], 1.0 = off",
    )
    _require(
      _finite(self.epochs_warmup) and self.epochs_warmup >= 0,
      "epochs_warmup",
      self.epochs_warmup,
      "must be finite and >= 0 (inf would keep the learning rate at 0)",
    )

  def beta2(self, steps_per_epoch: int) -> float:
    return 1.0 - 1.0 / (steps_per_epoch * self.polyak_epochs)


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """The pix2pix-flow objective: loss_X = mle_loss_scale * bits_x_X + code_loss_scale * code_loss.

  Attributes:
    joint_train: add the code loss to both models' losses (else it is only logged).
    code_loss_type: "code_last" (top block of eps) | "code_all" (every dimension) | "coupled":
      no code loss; the two codes are jointly Gaussian with a learned correlation rho per channel
      of each level (`flows.coupled_prior`) and each side's loss is the pair's joint bits/dim
      (`joint_losses`), so both models get the gradient of the one likelihood of the pair.
    code_loss_fn: "l2" (mean squared difference) | "l1" (mean absolute difference).
    code_loss_scale, mle_loss_scale: weights of the two terms.
    translation_loss_scale: weight of the translation loss, the pixel distance (code_loss_fn)
      of each side's translation to its partner (what the original's `B_all` meant to do, see
      `losses.translation_distance`); 0 = off. Only with joint_train.
    weight_y: weight of the class-prediction loss (bits_y) of a --ycond model.
    coupled_rho_init: the coupled prior's initial correlation (every channel). rho = 0 never
      couples (its gradient there is about 0 for two unrelated models); 0.9-0.97 trained well.
    coupled_per_dimension: one rho per dimension of eps instead of per channel of each level.
  """

  joint_train: bool = False
  code_loss_type: str = "code_last"
  code_loss_fn: str = "l2"
  code_loss_scale: float = 1.0
  mle_loss_scale: float = 1.0
  translation_loss_scale: float = 0.0
  weight_y: float = 0.0
  coupled_rho_init: float = 0.95
  coupled_per_dimension: bool = False

  @property
  def coupled(self) -> bool:
    """Whether the pair is trained as one density under the coupled prior."""
    return self.code_loss_type == "coupled"

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
    _require(
      _finite(self.code_loss_scale) and self.code_loss_scale >= 0,
      "code_loss_scale",
      self.code_loss_scale,
      "must be finite and >= 0",
    )
    _require(
      _finite(self.mle_loss_scale) and self.mle_loss_scale >= 0,
      "mle_loss_scale",
      self.mle_loss_scale,
      "must be finite and >= 0",
    )
    _require(
      _finite(self.translation_loss_scale) and self.translation_loss_scale >= 0,
      "translation_loss_scale",
      self.translation_loss_scale,
      "must be finite and >= 0",
    )
    _require(
      _finite(self.weight_y) and self.weight_y >= 0,
      "weight_y",
      self.weight_y,
      "must be finite and >= 0",
    )
    _require(
      _finite(self.coupled_rho_init) and abs(self.coupled_rho_init) < COUPLED_RHO_MAX,
      "coupled_rho_init",
      self.coupled_rho_init,
      f"must be finite with |rho| < {COUPLED_RHO_MAX:.6f} (sqrt(1 - {COUPLED_FLOOR}))",
    )
    _require(
      not self.coupled or self.joint_train,
      "code_loss_type",
      self.code_loss_type,
      "needs --joint_train (the coupled prior is the joint model of a pair)",
    )


# The original train.py's model (additive coupling, fixed top prior); `GlowConfig()` is the Glow
# paper's. Its image_shape and n_classes are placeholders until `TrainConfig.resolve` reads them
# off the data.
TRAIN_MODEL = GlowConfig(
  image_shape=(8, 8, 3),  # 2**n_levels square: valid for the levels, replaced by `resolve`
  n_levels=3,
  depth=32,
  width=512,
  coupling="additive",
  learntop=False,
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """A whole run. Batch sizes are global (summed over every replica of every worker).

  Attributes:
    data, model, optim, loss: the parts; `model` is the Glow of each side (both alike). Before
      `resolve`, its image_shape and n_classes are placeholders (the data decide them).
    ycond: class-conditional models (`model.n_classes` becomes the problem's class count).
    gradient_checkpointing: recompute each step of flow in the backward pass (training only).
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
    pick_threads: with both pools 0, time the step under a few pool settings on this machine
      and train with the fastest (`glow_tf2.train.threads`: CPU only, runs of 1,000+ steps,
      cached per machine and model, kept across resumes).
    branches: run each replica's batch as this many independent sub-batches
      (`Glow(branches=...)`).
    log_steps: a progress line every so many steps.
    keep_checkpoints: training checkpoints kept by the CheckpointManager.
    checkpoint_steps: also save a training checkpoint every so many steps (0 = off).
    checkpoint_secs: also save one when this many seconds passed since the last save (0 = off);
      with the epoch-end saves, a kill loses at most this much training (plus one step).
  """

  data: DataConfig = DataConfig()
  model: GlowConfig = TRAIN_MODEL
  optim: OptimConfig = OptimConfig()
  loss: LossConfig = LossConfig()
  ycond: bool = False
  gradient_checkpointing: bool = True
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
  pick_threads: bool = True
  branches: int = 1
  verbose: bool = False
  log_steps: int = 100
  keep_checkpoints: int = 3
  checkpoint_steps: int = 0
  checkpoint_secs: float = 300.0

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
    _require(
      0 <= self.num_cpu_devices <= 256,
      "num_cpu_devices",
      self.num_cpu_devices,
      "must be in [0, 256]",
    )
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
    _require(
      self.checkpoint_steps >= 0,
      "checkpoint_steps",
      self.checkpoint_steps,
      "must be >= 0 (0 = only by time and at epoch ends)",
    )
    _require(
      _finite(self.checkpoint_secs) and self.checkpoint_secs >= 0,
      "checkpoint_secs",
      self.checkpoint_secs,
      "must be finite and >= 0 (0 = only by steps and at epoch ends)",
    )
    _require(
      0 <= self.seed < MAX_SEED, "seed", self.seed, f"must be in [0, 2**31) = [0, {MAX_SEED})"
    )
    for flag, value in (
      ("n_batch_train", self.n_batch_train),
      ("n_batch_test", self.n_batch_test),
      ("n_batch_init", self.n_batch_init),
      ("train_steps", self.train_steps),
      ("epochs", self.epochs),
      ("checkpoint_steps", self.checkpoint_steps),
      ("n_sample", self.n_sample),
    ):
      _require(value < MAX_COUNT, flag, value, "must be < 2**62 (step counts are int64)")
    if self.jit_compile and self.model.permutation == "conv":
      raise ConfigError(
        "--jit_compile: XLA has no log-determinant kernel for "
        "--flow_permutation=conv; use lu (the same 1x1 conv, LU-parameterised), "
        "reverse or shuffle"
      )
    if self.loss.weight_y > 0:
      _require(
        self.ycond,
        "weight_y",
        self.loss.weight_y,
        "needs --ycond (the class-prediction head is only there in a class-conditional model)",
      )

  # ---------------------------------------------------------------------------------------------
  # Checks once the data set and the devices are known.

  def resolve(self, problem) -> "TrainConfig":
    """The run on `problem`: `model` gets its image shape and classes (checked against it)."""
    if self.loss.joint_train and not problem.paired:
      raise ConfigError(f"--joint_train: problem {problem.name!r} is not paired (no B images)")
    if self.ycond and not problem.n_classes:
      raise ConfigError(f"--ycond: problem {problem.name!r} has no class labels")
    if self.data.flip_color and not problem.paired:
      raise ConfigError(f"--flip_color: problem {problem.name!r} has no domain B to invert")
    try:
      model = dataclasses.replace(
        self.model,
        image_shape=tuple(problem.image_shape),
        n_classes=int(problem.n_classes or 0) if self.ycond else 0,
      )
    except ValueError as e:
      raise ConfigError(f"--image_size/--n_levels: {e}") from e
    return dataclasses.replace(self, model=model)

  def check_problem(self, problem) -> GlowConfig:
    """Checks the run against the problem's data; returns the model's GlowConfig."""
    return self.resolve(problem).model

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
    """The training batch must split evenly; evaluation pads its batches to any replica count."""
    train, _, _ = self.global_batches(image_size)
    if train % n_replicas:
      raise ConfigError(
        f"--n_batch_train={self.n_batch_train}: the global batch {train} must be "
        f"divisible by the {n_replicas} replicas"
      )

  def steps_per_epoch(self, image_size: int) -> int:
    return max(1, math.ceil(self.data.n_train / self.global_batches(image_size)[0]))

  def hyperparameters(self) -> dict[str, Any]:
    """glow-train's flags and their values, in flag order: the first line of the JSON logs.

    Keyed as the original's (`flow_permutation`, `restore_path_A`, ...); choices as words.
    """
    return {flag: get_field(self, path) for flag, path in FLAG_FIELDS.items()}


# glow-train's flag of each config field (a dotted path from TrainConfig), in the original's
# order of the flags, followed by this port's. The one table that ties flags to fields: the CLI,
# the presets, the JSON logs and the reader of old run folders use it.
FLAG_FIELDS: dict[str, str] = {
  "verbose": "verbose",
  "restore_path_A": "restore_path_a",
  "restore_path_B": "restore_path_b",
  "inference": "inference",
  "logdir": "logdir",
  "problem": "data.problem",
  "category": "data.category",
  "data_dir": "data.data_dir",
  "tfds_data_dir": "data.tfds_data_dir",
  "channels": "data.channels",
  "dal": "data.dal",
  "flip_color": "data.flip_color",
  "n_train": "data.n_train",
  "n_test": "data.n_test",
  "n_batch_train": "n_batch_train",
  "n_batch_test": "n_batch_test",
  "n_batch_init": "n_batch_init",
  "optimizer": "optim.optimizer",
  "lr": "optim.lr",
  "beta1": "optim.beta1",
  "polyak_epochs": "optim.polyak_epochs",
  "weight_decay": "optim.weight_decay",
  "epochs": "epochs",
  "train_steps": "train_steps",
  "epochs_warmup": "optim.epochs_warmup",
  "epochs_full_valid": "epochs_full_valid",
  "gradient_checkpointing": "gradient_checkpointing",
  "image_size": "data.image_size",
  "crop_size": "data.crop_size",
  "anchor_size": "anchor_size",
  "width": "model.width",
  "depth": "model.depth",
  "weight_y": "loss.weight_y",
  "n_bits_x": "model.n_bits_x",
  "n_levels": "model.n_levels",
  "n_sample": "n_sample",
  "epochs_full_sample": "epochs_full_sample",
  "learntop": "model.learntop",
  "ycond": "ycond",
  "seed": "seed",
  "flow_permutation": "model.permutation",
  "flow_coupling": "model.coupling",
  "precision": "model.precision",
  "joint_train": "loss.joint_train",
  "code_loss_type": "loss.code_loss_type",
  "code_loss_fn": "loss.code_loss_fn",
  "code_loss_scale": "loss.code_loss_scale",
  "mle_loss_scale": "loss.mle_loss_scale",
  "translation_loss_scale": "loss.translation_loss_scale",
  "coupled_rho_init": "loss.coupled_rho_init",
  "coupled_per_dimension": "loss.coupled_per_dimension",
  "strategy": "strategy",
  "num_cpu_devices": "num_cpu_devices",
  "jit_compile": "jit_compile",
  "intra_op_threads": "intra_op_threads",
  "inter_op_threads": "inter_op_threads",
  "pick_threads": "pick_threads",
  "branches": "branches",
  "log_steps": "log_steps",
  "keep_checkpoints": "keep_checkpoints",
  "checkpoint_steps": "checkpoint_steps",
  "checkpoint_secs": "checkpoint_secs",
}
FIELD_FLAGS: dict[str, str] = {path: flag for flag, path in FLAG_FIELDS.items()}

# Fields whose values are word choices, with the integer codes and aliases the flags also take.
_CHOICES: dict[str, tuple] = {
  "model.permutation": (PERMUTATIONS, PERMUTATION_CODES, None),
  "model.coupling": (COUPLINGS, COUPLING_CODES, None),
  "model.precision": (PRECISIONS, None, None),
  "optim.optimizer": (OPTIMIZERS, None, None),
  "loss.code_loss_type": (CODE_LOSS_TYPES, None, CODE_LOSS_TYPE_ALIASES),
  "loss.code_loss_fn": (CODE_LOSS_FNS, None, None),
  "strategy": (STRATEGIES, None, None),
}
_PARTS = {"data": DataConfig, "model": GlowConfig, "optim": OptimConfig, "loss": LossConfig}


def get_field(config: TrainConfig, path: str):
  """The value at a dotted path ("model.depth") of a TrainConfig."""
  value = config
  for name in path.split("."):
    value = getattr(value, name)
  return value


def default_of(path: str):
  """The default of a field: what `TrainConfig()` holds there (glow-train's flag defaults)."""
  return get_field(TrainConfig(), path)


def field_paths() -> tuple[str, ...]:
  """Every leaf field of a TrainConfig as a dotted path."""
  paths = []
  for field in dataclasses.fields(TrainConfig):
    if field.name in _PARTS:
      paths += [f"{field.name}.{f.name}" for f in dataclasses.fields(_PARTS[field.name])]
    else:
      paths.append(field.name)
  return tuple(paths)


def build(values: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
  """A checked TrainConfig from {dotted field path: value} over `base` (default TrainConfig()).

  Word choices take the original's integer codes too ("model.permutation": 2 -> "conv"). Raises
  ConfigError naming the flag of the first bad field.
  """
  base = base or TrainConfig()
  known = set(field_paths())
  unknown = sorted(set(values) - known)
  if unknown:
    raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
  parts: dict[str, dict[str, Any]] = {name: {} for name in _PARTS}
  top: dict[str, Any] = {}
  for path, value in values.items():
    if path in _CHOICES:
      choices, codes, aliases = _CHOICES[path]
      value = parse_choice(FIELD_FLAGS.get(path, path), value, choices, codes, aliases)
    if path == "model.image_shape":
      value = tuple(value)
    head, _, leaf = path.partition(".")
    if leaf:
      parts[head][leaf] = value
    else:
      top[path] = value
  model = parts["model"]
  levels = model.get("n_levels", base.model.n_levels)
  if "image_shape" not in model and _is_placeholder(base.model) and isinstance(levels, int):
    # Keep the placeholder shape valid for any level count; `resolve` puts the data's in.
    side = 2 ** max(levels, 0)
    model["image_shape"] = (side, side, base.model.image_shape[2])
  for name, changes in parts.items():
    if not changes:
      continue
    try:
      top[name] = dataclasses.replace(getattr(base, name), **changes)
    except ConfigError:
      raise
    except ValueError as e:  # GlowConfig's own messages name its field; name the flag
      field = next((k for k in changes if f"GlowConfig.{k}" in str(e)), None)
      flag = FIELD_FLAGS.get(f"{name}.{field}", "image_size/--n_levels")
      shown = f"={changes[field]}" if field else ""
      raise ConfigError(f"--{flag}{shown}: {e}") from e
  return dataclasses.replace(base, **top)


def _is_placeholder(model: GlowConfig) -> bool:
  """Whether a model's image_shape is `TRAIN_MODEL`'s stand-in (2**n_levels square)."""
  h, w, _ = model.image_shape
  return h == w == 2**model.n_levels and model.n_classes == 0


def to_dict(config: TrainConfig) -> dict[str, Any]:
  """The config as nested JSON-able dicts (tuples as lists); `from_dict` reads it back."""
  return dataclasses.asdict(config)


def from_dict(nested: Mapping[str, Any]) -> TrainConfig:
  """`to_dict`'s output back into a checked TrainConfig (fields missing keep their defaults)."""
  values = {}
  for key, value in nested.items():
    if key in _PARTS and isinstance(value, Mapping):
      values.update({f"{key}.{k}": v for k, v in value.items()})
    else:
      values[key] = value
  return build(values)
