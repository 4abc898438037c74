"""The typed configuration of one Glow model.

A `GlowConfig` is frozen: derived values (the data dimension, the shapes of every level) are
properties computed from the fields, never written back. Invalid values raise `ValueError` at
construction, naming the field and the value, so a bad flag fails before any TensorFlow work.
"""

import dataclasses
import math

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
