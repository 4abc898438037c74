"""What both kinds of pair share: the salts of their random streams, argument checks, and the
densities of a pair built on its coupled bits (`PairDensities`)."""

import math

import tensorflow as tf

from glow_tf2 import joint_losses
from glow_tf2.flows.coupled_prior import CoupledPrior
from glow_tf2.flows.glow import Glow

# The second word of each stateless seed [seed, salt]: one stream per use of the noise, so that
# no two uses of one request's seed share a draw (and sample_pairs' A side is sample_a's).
SALT_SAMPLE = 0
SALT_DEQUANTIZE_A = 1
SALT_A2B = 2
SALT_B2A = 3
SALT_PAIR_B = 4
SALT_DEQUANTIZE_B = 5

SIDES = ("a", "b")
# direction -> (source side, target side, salt of its noise)
DIRECTIONS = {"a2b": ("a", "b", SALT_A2B), "b2a": ("b", "a", SALT_B2A)}

NO_PRIOR = (
  "not defined for a pair without a coupled prior (rho = 1: eps_B = eps_A, a point mass given "
  "the other side); train with --code_loss_type=coupled"
)


def check_side(side: str) -> str:
  if not isinstance(side, str) or side.lower() not in SIDES:
    raise ValueError(f"side must be 'a' or 'b', got {side!r}")
  return side.lower()


def check_direction(direction: str) -> tuple[str, str, int]:
  if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
    raise ValueError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
  return DIRECTIONS[direction.lower()]


def check_temperature(temperature) -> float:
  temperature = float(temperature)
  if not (math.isfinite(temperature) and temperature >= 0):
    raise ValueError(f"temperature must be finite and >= 0, got {temperature!r}")
  return temperature


def check_images(images, what: str) -> tf.Tensor:
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8:
    raise ValueError(f"{what}: images must be uint8 [N, H, W, C], got {images.dtype.name}")
  return images


def check_labels(labels, n_classes: int, what: str) -> tf.Tensor | None:
  if labels is not None and not n_classes:
    raise ValueError(f"{what}: labels given, but the pair is not class-conditional")
  if labels is None and n_classes:
    raise ValueError(f"{what}: a class-conditional pair needs the images' labels")
  return None if labels is None else tf.cast(labels, tf.int32)


def stateless_seed(seed: int, salt: int) -> tf.Tensor:
  return tf.constant([int(seed), salt], tf.int32)


def check_pair(glow_a: Glow, glow_b: Glow, prior: CoupledPrior | None) -> None:
  """Raises ValueError unless the two models (and the prior) can form a translating pair."""
  for field in ("image_shape", "n_bits_x", "n_classes"):
    value_a, value_b = getattr(glow_a.config, field), getattr(glow_b.config, field)
    if value_a != value_b:
      raise ValueError(
        f"ImagePair: models A and B differ in {field} ({value_a} vs {value_b}); a translating "
        "pair needs the same"
      )
  if glow_a.config.data_dim != glow_b.config.data_dim:
    raise ValueError(
      f"ImagePair: models of different data dims ({glow_a.config.data_dim} vs "
      f"{glow_b.config.data_dim})"
    )
  if prior is not None and prior.config.eps_shapes != glow_a.config.eps_shapes:
    raise ValueError(
      f"ImagePair: the coupled prior's eps layout {prior.config.eps_shapes} is not the models' "
      f"{glow_a.config.eps_shapes}"
    )


class PairDensities:
  """The pair's densities, built on a subclass's `_coupled_bits` (`ImagePair`, `SavedPair`)."""

  def _coupled_bits(self, images_a, images_b, labels, noise, seed, what):
    raise NotImplementedError

  def coupled_bits(
    self, images_a, images_b, labels=None, noise: bool = False, seed: int = 0
  ) -> joint_losses.CoupledBits:
    """Every bits/dim `[N]` of image pairs under the coupled prior (`joint_losses.coupled_bits`:
    joint, b_given_a, a_given_b, a, b). Noise as `bits_per_dim`, B's from [seed,
    SALT_DEQUANTIZE_B] (the SavedModel's `coupled_bits_per_dim` and `coupled_bits_per_dim_noise`).

    Raises:
      ValueError: a pair without a coupled prior.
    """
    return self._coupled_bits(images_a, images_b, labels, noise, seed, "coupled_bits")

  def joint_bits_per_dim(self, images_a, images_b, labels=None, noise=False, seed=0):
    """`[N]`: bits per dimension of the pair (over its 2D dims) under the coupled prior.

    Raises:
      ValueError: a pair without a coupled prior (rho = 1 has no density of the pair).
    """
    return self._coupled_bits(images_a, images_b, labels, noise, seed, "joint_bits_per_dim").joint

  def conditional_bits_per_dim(
    self, images_a, images_b, direction: str = "a2b", labels=None, noise=False, seed=0
  ):
    """`[N]`: bits per dimension of the target side given the source ("a2b": B given A).

    Raises:
      ValueError: a pair without a coupled prior, or an unknown direction.
    """
    source, _, _ = check_direction(direction)
    bits = self._coupled_bits(images_a, images_b, labels, noise, seed, "conditional_bits_per_dim")
    return bits.b_given_a if source == "a" else bits.a_given_b
