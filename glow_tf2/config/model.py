"""`GlowConfig`, the architecture of one Glow flow, and the original train.py's (`TRAIN_MODEL`)."""

import dataclasses
import math

from glow_tf2.config.fields import setting

PERMUTATIONS = ("reverse", "shuffle", "conv", "lu")
COUPLINGS = ("additive", "affine")
# What the coupling networks and the priors' convolutions compute in; variables, the flow's affine
# arithmetic, log-determinants and the loss stay float32 in every case.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# How training lifts the discrete images to continuous x: uniform noise in each bin, or a
# learned noise distribution (variational dequantisation, `flows.dequantizer`).
DEQUANTIZATIONS = ("uniform", "variational")

# The original train.py took integers for these choices; the CLI maps them once, here.
PERMUTATION_CODES = {0: "reverse", 1: "shuffle", 2: "conv", 3: "lu"}
COUPLING_CODES = {0: "additive", 1: "affine"}


@dataclasses.dataclass(frozen=True)
class GlowConfig:
  """Architecture of one Glow flow (Kingma & Dhariwal, 2018); the defaults are the paper's.

  Each field's help text says what it is. A bad value raises `ValueError` naming the field.
  """

  image_shape: tuple[int, int, int] = setting(
    (32, 32, 3),
    "(H, W, C) of the images: C is 1 or 3, H and W divisible by 2**n_levels. glow-train takes "
    "it from the data (--image_size, --crop_size, --channels).",
    flag=None,
  )
  n_levels: int = setting(3, "L, the number of scales; every level but the last ends in a split.")
  depth: int = setting(32, "K, steps of flow (actnorm -> permutation -> coupling) per level.")
  width: int = setting(512, "Channels of the hidden layers of every coupling network.")
  permutation: str = setting(
    "conv",
    "reverse | shuffle | conv (invertible 1x1 conv) | lu (the same, LU-parameterised); the "
    "original's 0, 1, 2, 3 too.",
    flag="flow_permutation",
  )
  coupling: str = setting("affine", "additive | affine (or 0, 1).", flag="flow_coupling")
  learntop: bool = setting(True, "Learn the mean and log-std of the top-level prior.")
  n_classes: int = setting(
    0,
    "0 for an unconditional model; > 0 turns on the class-conditional top prior. glow-train "
    "takes the problem's class count with --ycond.",
    flag=None,
  )
  n_bits_x: int = setting(8, "Bits per colour channel the images are quantised to (1..8).")
  precision: str = setting(
    "float32",
    "Compute type of the coupling networks and the priors' convolutions: float32 | "
    "mixed_bfloat16 | mixed_float16 (variables and the flow's arithmetic stay float32).",
  )
  noise_sigma: float = setting(
    0.0,
    "Train on x + sigma * N(0, I) (x in [-0.5, 0.5]; TarFlow's noise augmentation) and denoise "
    "every decoded image by one Tweedie step through the flow (glow_tf2.denoise); 0 = off. "
    "Bits/dim in training are then of the noised data; evaluation's are of the clean data.",
  )
  dequantization: str = setting(
    "uniform",
    "uniform | variational: dequantise with U(0, 1) noise in each bin, or learn the noise "
    "(Flow++'s variational dequantisation, glow_tf2.flows.dequantizer) and train on its tighter "
    "bound, logged as bits_per_dim_vd_<side>; evaluation reports the uniform bits/dim too.",
  )

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
    if not (isinstance(self.noise_sigma, (int, float)) and 0.0 <= self.noise_sigma < 0.5):
      raise ValueError(f"GlowConfig.noise_sigma must be in [0, 0.5), got {self.noise_sigma!r}")
    if self.dequantization not in DEQUANTIZATIONS:
      raise ValueError(
        f"GlowConfig.dequantization must be one of {DEQUANTIZATIONS}, got {self.dequantization!r}"
      )

  @property
  def ycond(self) -> bool:
    return self.n_classes > 0

  @property
  def variational(self) -> bool:
    """Whether the model learns its dequantisation noise (`dequantization` = variational)."""
    return self.dequantization == "variational"

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


def placeholder_shape(n_levels: int, channels: int) -> tuple[int, int, int]:
  """A stand-in image shape valid for `n_levels` (2**n_levels square) until the data give theirs."""
  side = 2 ** max(n_levels, 0)
  return (side, side, channels)


# The original train.py's model: the paper's (`GlowConfig()`) but for an additive coupling and a
# fixed top prior. Its image_shape and n_classes are placeholders until `TrainConfig.resolve` reads
# them off the data.
TRAIN_MODEL = GlowConfig(
  image_shape=placeholder_shape(GlowConfig().n_levels, GlowConfig().image_shape[2]),
  coupling="additive",
  learntop=False,
)
