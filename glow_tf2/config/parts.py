"""The parts of a training run: where the images come from, the optimiser, the loss.

Their checks raise `ConfigError` with a message that starts with the flag at fault.
"""

import dataclasses
import math

from glow_tf2.config.fields import ConfigError
from glow_tf2.config.fields import finite
from glow_tf2.config.fields import require
from glow_tf2.config.fields import setting

OPTIMIZERS = ("adam", "adamax")
CODE_LOSS_TYPES = ("code_last", "code_all", "coupled")
CODE_LOSS_FNS = ("l2", "l1")
# The original's --code_loss_type / --code_loss_range spellings.
CODE_LOSS_TYPE_ALIASES = {"last": "code_last", "all": "code_all"}
# The coupled prior's least 1 - rho^2, and so its largest |rho| (`flows.coupled_prior`).
COUPLED_FLOOR = 1e-4
COUPLED_RHO_MAX = math.sqrt(1.0 - COUPLED_FLOOR)
# Counts (steps, batch sizes, images) must fit the int64 step variable with room to multiply.
MAX_COUNT = 2**62


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the images come from."""

  problem: str = setting(
    "mnist",
    "Problem name (mnist, edges2shoes, cifar10, lsun, a folder, tfds:NAME); see "
    "glow_tf2.input.problems.",
  )
  data_dir: str | None = setting(None, "Folder of the problem's data (unset: its default place).")
  tfds_data_dir: str | None = setting(None, "tensorflow-datasets data folder for tfds: problems.")
  category: str = setting("", "LSUN category (with --problem=lsun: the problem lsun_<category>).")
  channels: int = setting(3, "Colour channels, 1 or 3 (MNIST can be trained on 1).")
  image_size: int = setting(-1, "Image side (-1: the problem's; else resized to this square).")
  crop_size: int = setting(
    0,
    "Read the centre crop_size x crop_size of the images (0: whole; 28 undoes the embedded "
    "sets' padding of 28x28 images to 32x32).",
  )
  dal: int = setting(
    1,
    "Data augmentation level (0 off, 1 random shifts up to 10%, 2 random affine maps), the "
    "same for both sides of a pair.",
  )
  n_train: int = setting(50000, "Training images per epoch.")
  n_test: int = setting(-1, "Test images to evaluate (-1: the whole test split).")
  flip_color: bool = setting(False, "Invert the colours of domain B (255 - x) as it is read.")

  def __post_init__(self):
    require(bool(self.problem), "problem", self.problem, "must name a problem")
    require(self.channels in (1, 3), "channels", self.channels, "must be 1 or 3")
    require(
      self.image_size == -1 or self.image_size >= 2,
      "image_size",
      self.image_size,
      "must be -1 (the problem's size) or >= 2",
    )
    require(self.crop_size >= 0, "crop_size", self.crop_size, "must be 0 (no crop) or >= 1")
    require(self.dal in (0, 1, 2), "dal", self.dal, "must be 0 (off), 1 (shifts) or 2 (affine)")
    require(1 <= self.n_train < MAX_COUNT, "n_train", self.n_train, "must be in [1, 2**62)")
    require(
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
  """Optimizer, schedule, weight decay and Polyak averaging."""

  optimizer: str = setting("adamax", "adam | adamax (Keras's).")
  lr: float = setting(0.001, "Peak learning rate, reached linearly over --epochs_warmup epochs.")
  beta1: float = setting(0.9, "Adam/Adamax beta1 (the first-moment decay).")
  polyak_epochs: float = setting(
    1.0,
    "Second-moment (and, without --ema_epochs, EMA) horizon in epochs: beta2 (and the EMA's "
    "decay) are 1 - 1/(steps per epoch * this).",
  )
  ema_epochs: float | None = setting(
    None,
    "Horizon in epochs of the weight average (EMA) that validation, samples, inference and export "
    "use: its decay is 1 - 1/(steps per epoch * this), 0 = no averaging (the trained weights). "
    "Unset: --polyak_epochs, Glow's tie to beta2.",
  )
  weight_decay: float = setting(1.0, "Multiplicative weight decay after every update (1.0 = off).")
  epochs_warmup: float = setting(10.0, "Epochs of linear learning-rate warmup (0 = none).")
  joint_lr: float = setting(
    0.0,
    "With --warm_start_steps: the peak learning rate of the joint phase, reached again over "
    "--epochs_warmup epochs after the switch (0: --lr).",
  )

  def __post_init__(self):
    require(
      self.optimizer in OPTIMIZERS,
      "optimizer",
      self.optimizer,
      f"must be one of {', '.join(OPTIMIZERS)}",
    )
    require(finite(self.lr) and self.lr > 0, "lr", self.lr, "must be finite and > 0")
    require(0.0 <= self.beta1 < 1.0, "beta1", self.beta1, "must be in [0, 1)")
    require(
      finite(self.polyak_epochs) and self.polyak_epochs > 0,
      "polyak_epochs",
      self.polyak_epochs,
      "must be finite and > 0 (inf would make beta2 = 1: no second moment, no averaging)",
    )
    require(
      self.ema_epochs is None or (finite(self.ema_epochs) and self.ema_epochs >= 0),
      "ema_epochs",
      self.ema_epochs,
      "must be finite and >= 0 (0: no averaging)",
    )
    require(
      0.0 < self.weight_decay <= 1.0,
      "weight_decay",
      self.weight_decay,
      "is multiplicative: must be in (0, 1], 1.0 = off",
    )
    require(
      finite(self.epochs_warmup) and self.epochs_warmup >= 0,
      "epochs_warmup",
      self.epochs_warmup,
      "must be finite and >= 0 (inf would keep the learning rate at 0)",
    )

    require(
      finite(self.joint_lr) and self.joint_lr >= 0,
      "joint_lr",
      self.joint_lr,
      "must be finite and >= 0 (0: --lr)",
    )

  def beta2(self, steps_per_epoch: int) -> float:
    return 1.0 - 1.0 / (steps_per_epoch * self.polyak_epochs)

  def ema_decay(self, steps_per_epoch: int) -> float:
    """The EMA's decay, 1 - 1/N over a horizon of N = steps_per_epoch * ema_epochs updates
    (--polyak_epochs when unset, so beta2); 0 (a copy of the weights) for a horizon under one
    update."""
    epochs = self.polyak_epochs if self.ema_epochs is None else self.ema_epochs
    return max(0.0, 1.0 - 1.0 / (steps_per_epoch * epochs)) if epochs > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """The pix2pix-flow objective: loss_X = mle_loss_scale * bits_x_X + code_loss_scale * code_loss.

  With code_loss_type "coupled" there is no code loss: each side's loss is the pair's joint
  bits/dim under the coupled prior (`flows.coupled_prior`, `joint_losses`), so both models get the
  gradient of the one likelihood of the pair. The translation loss is what the original's `B_all`
  meant to do (`losses.translation_distance`).
  """

  joint_train: bool = setting(
    False, "Add the code loss to both models' losses (else it is only logged)."
  )
  code_loss_type: str = setting(
    "code_last",
    "code_last (the top block of the codes) | code_all (every dimension): a distance between the "
    "codes | coupled (no code loss: the codes are jointly Gaussian with a learned correlation rho "
    "per channel of each level and the loss is the pair's joint bits/dim; needs --joint_train).",
  )
  code_loss_fn: str = setting("l2", "l2 (mean squared difference) | l1 (mean absolute difference).")
  code_loss_scale: float = setting(1.0, "Weight of the code loss.")
  mle_loss_scale: float = setting(1.0, "Weight of the bits/dim term.")
  translation_loss_scale: float = setting(
    0.0,
    "Weight of the translation loss (with --joint_train): the mean squared (--code_loss_fn) "
    "pixel error of decode_B(encode_A(x_A)) against x_B and of B -> A against x_A; 0 = off.",
  )
  weight_y: float = setting(0.0, "Weight of the class-prediction loss (bits_y) of a --ycond model.")
  coupled_rho_init: float = setting(
    0.95,
    "--code_loss_type=coupled: the initial correlation of every channel's codes (|rho| < 1; 0 "
    "never couples, its gradient there is about 0 for two unrelated models; 0.9-0.97 trained "
    "well).",
  )
  coupled_per_dimension: bool = setting(
    False,
    "--code_loss_type=coupled: one rho per dimension of the code instead of per channel of "
    "each level.",
  )

  @property
  def coupled(self) -> bool:
    """Whether the pair is trained as one density under the coupled prior."""
    return self.code_loss_type == "coupled"

  def __post_init__(self):
    require(
      self.code_loss_type in CODE_LOSS_TYPES,
      "code_loss_type",
      self.code_loss_type,
      f"must be one of {', '.join(CODE_LOSS_TYPES)}",
    )
    require(
      self.code_loss_fn in CODE_LOSS_FNS,
      "code_loss_fn",
      self.code_loss_fn,
      f"must be one of {', '.join(CODE_LOSS_FNS)}",
    )
    require(
      finite(self.code_loss_scale) and self.code_loss_scale >= 0,
      "code_loss_scale",
      self.code_loss_scale,
      "must be finite and >= 0",
    )
    require(
      finite(self.mle_loss_scale) and self.mle_loss_scale >= 0,
      "mle_loss_scale",
      self.mle_loss_scale,
      "must be finite and >= 0",
    )
    require(
      finite(self.translation_loss_scale) and self.translation_loss_scale >= 0,
      "translation_loss_scale",
      self.translation_loss_scale,
      "must be finite and >= 0",
    )
    require(
      finite(self.weight_y) and self.weight_y >= 0,
      "weight_y",
      self.weight_y,
      "must be finite and >= 0",
    )
    require(
      finite(self.coupled_rho_init) and abs(self.coupled_rho_init) < COUPLED_RHO_MAX,
      "coupled_rho_init",
      self.coupled_rho_init,
      f"must be finite with |rho| < {COUPLED_RHO_MAX:.6f} (sqrt(1 - {COUPLED_FLOOR}))",
    )
    require(
      not self.coupled or self.joint_train,
      "code_loss_type",
      self.code_loss_type,
      "needs --joint_train (the coupled prior is the joint model of a pair)",
    )
