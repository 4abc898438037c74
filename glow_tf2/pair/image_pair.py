"""`ImagePair`: two Glows and the prior of their codes, in memory (a run's EMA weights, or a
trainer's)."""

import tensorflow as tf

from glow_tf2 import denoise
from glow_tf2 import joint_losses
from glow_tf2 import losses
from glow_tf2 import seeds as seeds_lib
from glow_tf2.flows.coupled_prior import CoupledPrior
from glow_tf2.flows.glow import Glow
from glow_tf2.pair.common import NO_PRIOR
from glow_tf2.pair.common import SALT_DEQUANTIZE_A
from glow_tf2.pair.common import SALT_DEQUANTIZE_B
from glow_tf2.pair.common import SALT_PAIR_B
from glow_tf2.pair.common import SALT_SAMPLE
from glow_tf2.pair.common import PairDensities
from glow_tf2.pair.common import check_direction
from glow_tf2.pair.common import check_images
from glow_tf2.pair.common import check_labels
from glow_tf2.pair.common import check_pair
from glow_tf2.pair.common import check_side
from glow_tf2.pair.common import check_temperature
from glow_tf2.pair.common import stateless_seed


class ImagePair(PairDensities):
  """Two Glows of paired domains and the correlation rho of their codes.

  Example:
    pair = glow_tf2.load_pair("runs/quickstart")          # or ImagePair(glow_a, glow_b, prior)
    x_b = pair.translate(images_a)                         # uint8, the conditional mean (T = 0)
    draws = [pair.translate(images_a, temperature=0.7, seed=s * len(images_a)) for s in range(4)]
    samples_a, samples_b = pair.sample_pairs(16, temperature=0.7, seed=0)
    bits = pair.conditional_bits_per_dim(images_a, images_b)   # B given A (a coupled pair)

  Args:
    glow_a: domain A's model.
    glow_b: domain B's model; the same image shape, n_bits_x, classes and eps layout as A's.
    prior: the `CoupledPrior` of a pair trained as one density; None: rho = 1 (eps_B = eps_A),
      the pair of a code-loss or independent run.

  Raises:
    ValueError: models of different data, or a prior of another eps layout.
  """

  def __init__(self, glow_a: Glow, glow_b: Glow, prior: CoupledPrior | None = None):
    check_pair(glow_a, glow_b, prior)
    self.glow_a, self.glow_b, self.prior = glow_a, glow_b, prior
    self.config = glow_a.config
    self._glows = {"a": glow_a, "b": glow_b}
    # Traced once per side (and batch shape class), as the trainer's own encode and decode are.
    self._encoders = {s: self._compiled(self._encode_fn(g)) for s, g in self._glows.items()}
    self._decoders = {s: self._compiled(self._decode_fn(g)) for s, g in self._glows.items()}

  @staticmethod
  def _compiled(fn):
    return tf.function(fn, reduce_retracing=True, autograph=False)

  def _encode_fn(self, glow):
    def encode(images, labels=None):
      x = losses.preprocess(images, glow.config.n_bits_x, noise=False)
      return glow.encode(x, labels=labels)[0]

    return encode

  def _decode_fn(self, glow):
    def decode(eps, labels=None):
      return losses.postprocess(denoise.decode(glow, eps, labels=labels), glow.config.n_bits_x)

    return decode

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of both sides' images (`SavedPair.image_shape` too)."""
    return tuple(int(d) for d in self.config.image_shape)

  @property
  def n_classes(self) -> int:
    """Classes of a class-conditional pair, else 0 (`SavedPair.n_classes` too)."""
    return int(self.config.n_classes or 0)

  @property
  def coupled(self) -> bool:
    """Whether the codes are coupled by a learned rho (else rho = 1)."""
    return self.prior is not None

  @property
  def seed_per_row(self) -> bool:
    """Its draws take a seed per row (`SavedPair.seed_per_row` is False for an older export)."""
    return True

  def glow(self, side: str) -> Glow:
    """The Glow of side "a" or "b"."""
    return self._glows[check_side(side)]

  def rho(self) -> tf.Tensor:
    """float32 `[D]`: the correlation of each dimension pair of the codes (ones without a prior)."""
    if self.prior is None:
      return tf.ones([self.config.data_dim], tf.float32)
    return self.prior.rho()

  # ---------------------------------------------------------------------------------------------
  # Codes and images.

  def encode(self, images, side: str, labels=None) -> tf.Tensor:
    """eps float32 `[N, D]` of uint8 images `[N, H, W, C]` of `side`, at the centre of each bin
    (Glow's layout: every level's latent, finest first)."""
    side = check_side(side)
    images = check_images(images, f"encode_{side}")
    return self._encoders[side](
      images, check_labels(labels, self.config.n_classes, f"encode_{side}")
    )

  def decode(self, eps, side: str, labels=None) -> tf.Tensor:
    """uint8 images `[N, H, W, C]` of codes eps `[N, D]` by `side`'s flow (one Tweedie step after
    it for a noise-augmented model, `denoise.decode`)."""
    side = check_side(side)
    eps = tf.convert_to_tensor(eps, tf.float32)
    return self._decoders[side](eps, check_labels(labels, self.config.n_classes, f"decode_{side}"))

  def conditional_code(self, given, temperature=0.0, seeds=None, salt=None) -> tf.Tensor:
    """`[N, D]`: rho * given + T sqrt(1 - rho^2) n, the code of one side given the other's.

    The one place of the translation's code. Without a prior (rho = 1) it is `given` itself at
    every temperature. Row i's noise is n_i = stateless_normal([D], seed=[seeds_i, salt])
    (`glow_tf2.seeds.row_normal`), the SavedModel's draw of the same row seed, whatever the batch.

    Args:
      given: the other side's code `[N, D]`.
      temperature: T >= 0, a float or a tensor broadcasting against `[N, D]` (the SavedModel
        passes one T per row, `[N, 1]`); T = 0 is the conditional mean code rho * given.
      seeds: int32 `[N]`, one seed per row; needed when T may be > 0.
      salt: the use of the noise (`SALT_A2B`, `SALT_B2A`, `SALT_PAIR_B`); needed with `seeds`.
    """
    given = tf.convert_to_tensor(given, tf.float32)
    if self.prior is None:
      return given
    noise = None
    # A Python T = 0 draws nothing: the prior returns the mean without looking at noise.
    if seeds is not None and not (isinstance(temperature, (int, float)) and temperature == 0):
      if salt is None:
        raise ValueError("conditional_code: seeds given without the salt of their use")
      noise = seeds_lib.row_normal(seeds, salt, self.config.data_dim)
    return self.prior.conditional_sample(given, temperature, noise=noise)

  def sample_codes(self, seeds, temperature) -> tuple[tf.Tensor, tf.Tensor]:
    """(eps_A, eps_B), each `[N, D]`: pairs of codes from the joint at temperature T, one per seed.

    eps_A,i = T n_A,i with n_A,i = stateless_normal([D], seed=[seeds_i, SALT_SAMPLE]) (so
    images_a are sample_a's of the seeds) and eps_B = `conditional_code(eps_A, T, seeds,
    SALT_PAIR_B)`.

    Args:
      seeds: int32 `[N]`, one seed per pair (a list, an array or a tensor).
      temperature: T >= 0, a float or a tensor broadcasting against `[N, D]`.
    """
    seeds = tf.convert_to_tensor(seeds, tf.int32)
    eps_a = seeds_lib.row_normal(seeds, SALT_SAMPLE, self.config.data_dim) * temperature
    return eps_a, self.conditional_code(eps_a, temperature, seeds, SALT_PAIR_B)

  def translate(
    self, images, direction: str = "a2b", temperature: float = 0.0, seed=0, labels=None
  ) -> tf.Tensor:
    """uint8 images of the target side: decode_B(rho * encode_A(x) + T sqrt(1 - rho^2) n).

    A draw of p(x_B | x_A) at temperature T (T = 0: the conditional mean code, the same for any
    seed); "b2a" swaps the sides. Row i's n is the SavedModel's `translate_<direction>_sample`
    draw of row i's seed, so an image translates alike alone or in any batch.

    Args:
      images: uint8 `[N, H, W, C]` of the source side.
      direction: "a2b" or "b2a".
      temperature: T >= 0 (a pair without a coupled prior ignores it: rho = 1).
      seed: an int (row i draws from (seed + i) mod 2^31, `seeds.per_row`) or int32 `[N]`, one
        seed per row; n_i = stateless_normal([D], seed=[seed_i, SALT_A2B or SALT_B2A]).
      labels: int `[N]`, the images' classes, for a class-conditional pair.
    """
    source, target, salt = check_direction(direction)
    temperature = check_temperature(temperature)
    images = check_images(images, f"translate_{direction}")
    seeds = seeds_lib.per_row(seed, int(images.shape[0]))
    eps = self.encode(images, source, labels)
    code = self.conditional_code(eps, temperature, seeds, salt)
    return self.decode(code, target, labels)

  def sample_pairs(
    self, n: int, temperature: float = 1.0, seed=0, labels=None
  ) -> tuple[tf.Tensor, tf.Tensor]:
    """(images_a, images_b), uint8 `[n, H, W, C]` each: n matching pairs from the joint at T
    (`sample_codes`; the SavedModel's `sample_pairs` of the same seeds). `seed`: an int (pair i
    from (seed + i) mod 2^31) or int32 `[n]`. `labels`: int `[n]`, the pairs' classes, for a
    class-conditional pair."""
    temperature = check_temperature(temperature)
    eps_a, eps_b = self.sample_codes(seeds_lib.per_row(seed, int(n)), temperature)
    return self.decode(eps_a, "a", labels), self.decode(eps_b, "b", labels)

  # ---------------------------------------------------------------------------------------------
  # Densities, in bits per dimension.

  def _x(self, images, noise: bool, seed: int, salt: int, what: str) -> tf.Tensor:
    images = check_images(images, what)
    stateless = stateless_seed(seed, salt) if noise else None
    return losses.preprocess(images, self.config.n_bits_x, noise=noise, seed=stateless)

  def bits_per_dim(self, images, side: str, labels=None, noise: bool = False, seed: int = 0):
    """`[N]`: Glow's bits/dim of uint8 images under `side`'s model alone.

    Mid-bin by default (deterministic, the SavedModel's `bits_per_dim_<side>`); `noise=True`
    dequantizes with uniform noise from the stateless seed [seed, SALT_DEQUANTIZE_A], as Glow
    reported its figures (`bits_per_dim_noise_<side>`).
    """
    side = check_side(side)
    where = f"bits_per_dim_{side}"
    x = self._x(images, noise, seed, SALT_DEQUANTIZE_A, where)
    glow = self._glows[side]
    log_prob, _ = losses.log_prob_and_eps(
      glow, x, check_labels(labels, self.config.n_classes, where)
    )
    return losses.bits_from_log_prob(log_prob, self.config.data_dim, self.config.n_bits_x)

  def _coupled_bits(self, images_a, images_b, labels, noise, seed, what):
    if self.prior is None:
      raise ValueError(f"{what}: {NO_PRIOR}")
    labels = check_labels(labels, self.config.n_classes, what)
    x_a = self._x(images_a, noise, seed, SALT_DEQUANTIZE_A, what)
    x_b = self._x(images_b, noise, seed, SALT_DEQUANTIZE_B, what)
    eps_a, log_det_a = self.glow_a.encode(x_a, labels=labels)
    eps_b, log_det_b = self.glow_b.encode(x_b, labels=labels)
    return joint_losses.coupled_bits(
      self.prior, eps_a, log_det_a, eps_b, log_det_b, self.config.n_bits_x
    )
