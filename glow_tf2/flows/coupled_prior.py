"""The coupled prior: two Glows' standardized codes as one normalised density over pairs.

pix2pix-flow pulls the codes of a pair together with a squared distance, which rewards shrinking
both codes; the log-dets pay for the shrinking. Here the pair has one density instead. Each
Glow maps its image to a standardized code eps `[D]` (`Glow.encode`), and the two codes are
jointly Gaussian, every dimension pair (eps_A,d, eps_B,d) a bivariate standard normal with
correlation rho_d:

  eps_A ~ N(0, I),    eps_B | eps_A ~ N(rho * eps_A, diag(1 - rho^2)),

so both marginals are exactly N(0, I) (each model alone is still a plain Glow), the pair's
covariance is [[I, diag(rho)], [diag(rho), I]], and the model is symmetric: eps_A | eps_B ~
N(rho * eps_B, diag(1 - rho^2)). The joint density of the images is

  log p(x_A, x_B) = log N(eps_A; 0, I) + logdet_A + log N(eps_B; rho eps_A, 1 - rho^2) + logdet_B.

rho is learned per channel of each level of Glow's eps layout (finest level first, top last,
row-major NHWC; `GlowConfig.eps_shapes`), shared over positions, or optionally per dimension.

Parameterisation (soft, never clipped): rho = rho_max * tanh(r) with rho_max = sqrt(1 - floor),
so |rho| <= rho_max < 1 and 1 - rho^2 = floor + (1 - floor) sech^2(r) >= floor for every real r;
the log-variance is computed from that sum, which stays finite (and its gradient too) where
tanh(r) rounds to 1. Negative rho is allowed. rho = 0 is a stationary point that never couples
(d loss / d rho at rho = 0 is -E[eps_A eps_B], about 0 for two independently initialised
models), so the initial rho is an argument; 0.9-0.97 trained well in the prototype.

Translation at temperature T: eps_B = rho * eps_A + T sqrt(1 - rho^2) n, n ~ N(0, I). At T = 0
(the conditional mean code) the map x_A -> x_B is the bijector
Chain([glow_B, Scale(rho), Invert(glow_A)]) (`coupled_translation`); its `.inverse` is the exact
inverse (eps_A = eps_B / rho), which is NOT the conditional-mean translation B -> A
(eps_A = rho * eps_B): that one is `coupled_translation(glow_b, glow_a, prior)`.
"""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from glow_tf2.config import GlowConfig
from glow_tf2.flows import glow as glow_lib

tfb = tfp.bijectors

_LOG_2PI = math.log(2.0 * math.pi)


def channel_index(config: GlowConfig) -> np.ndarray:
  """int `[D]`: for each dimension of eps, the index of its (level, channel) among all channels.

  Channels are numbered level by level, finest first: level l's channel k is
  sum_{l' < l} c_l' + k. eps flattens each level's `[h, w, c]` block row-major, so dimension
  (i, j, k) of a block sits at (i w + j) c + k and its channel is the fastest index.
  """
  index, offset = [], 0
  for h, w, c in config.eps_shapes:
    index.append(np.tile(np.arange(c) + offset, h * w))
    offset += c
  return np.concatenate(index).astype(np.int32)


def _log_sech_sq(r: tf.Tensor) -> tf.Tensor:
  """log sech^2(r) = log 4 - 2|r| - 2 log(1 + exp(-2|r|)), finite for every finite r."""
  a = tf.abs(r)
  return math.log(4.0) - 2.0 * a - 2.0 * tf.math.softplus(-2.0 * a)


class CoupledPrior(tf.Module):
  """The joint density of two standardized codes: a bivariate standard normal per dimension.

  Example:
    prior = CoupledPrior(glow_a.config, initial_rho=0.95)
    eps_a, log_det_a = glow_a.encode(x_a)
    eps_b, log_det_b = glow_b.encode(x_b)
    log_p = prior.log_prob(eps_a, eps_b) + log_det_a + log_det_b  # log p(x_A, x_B), `[N]`

  Args:
    config: the architecture both models share (its `eps_shapes` give the layout of rho).
    initial_rho: rho of every channel (or dimension) at the start; |initial_rho| < rho_max.
    per_dimension: learn one rho per dimension of eps instead of one per channel of each level.
    floor: the least value of 1 - rho^2 (0 < floor < 1), i.e. |rho| <= sqrt(1 - floor).
    name: name scope of the variable.

  Raises:
    ValueError: an initial_rho or floor out of range.
  """

  def __init__(
    self,
    config: GlowConfig,
    initial_rho: float = 0.95,
    per_dimension: bool = False,
    floor: float = 1e-4,
    name: str = "coupled_prior",
  ):
    super().__init__(name=name)
    if not 0.0 < floor < 1.0:
      raise ValueError(f"CoupledPrior: floor must be in (0, 1), got {floor!r}")
    self.rho_max = math.sqrt(1.0 - floor)
    if not abs(initial_rho) < self.rho_max:
      raise ValueError(
        f"CoupledPrior: initial_rho must satisfy |rho| < sqrt(1 - floor) = {self.rho_max:.6f}, "
        f"got {initial_rho!r}"
      )
    self.config = config
    self.floor = floor
    self.per_dimension = per_dimension
    self.data_dim = config.data_dim
    index = channel_index(config)
    self._index = None if per_dimension else tf.constant(index)
    size = self.data_dim if per_dimension else int(index.max()) + 1
    r0 = math.atanh(initial_rho / self.rho_max)
    with self.name_scope:
      self.r = tf.Variable(tf.fill([size], r0), name="r")

  def _spread(self, values: tf.Tensor) -> tf.Tensor:
    """Per-parameter values `[P]` -> per-dimension `[D]` in eps's layout."""
    return values if self._index is None else tf.gather(values, self._index)

  def rho(self) -> tf.Tensor:
    """`[D]`: the correlation of each dimension pair, in eps's layout."""
    return self._spread(self.rho_max * tf.tanh(self.r))

  def log_variance(self) -> tf.Tensor:
    """`[D]`: log(1 - rho^2), from floor + (1 - floor) sech^2(r) (never log 0)."""
    log_var = tf.math.log(self.floor + (1.0 - self.floor) * tf.exp(_log_sech_sq(self.r)))
    return self._spread(log_var)

  def _check(self, *eps) -> None:
    for e in eps:
      if e.shape.rank is not None and e.shape[-1] is not None and e.shape[-1] != self.data_dim:
        raise ValueError(f"{self.name}: codes must be [..., {self.data_dim}], got {e.shape}")

  def marginal_log_prob(self, eps) -> tf.Tensor:
    """`[...]`: log N(eps; 0, I) of one side's code `[..., D]` (either side's marginal)."""
    eps = tf.convert_to_tensor(eps, tf.float32)
    self._check(eps)
    return -0.5 * tf.reduce_sum(tf.square(eps) + _LOG_2PI, axis=-1)

  def conditional_log_prob(self, eps, given) -> tf.Tensor:
    """`[...]`: log N(eps; rho * given, 1 - rho^2), the density of one code given the other.

    The model is symmetric, so this is log p(eps_B | eps_A) with (eps_B, eps_A) and
    log p(eps_A | eps_B) with (eps_A, eps_B).
    """
    eps = tf.convert_to_tensor(eps, tf.float32)
    given = tf.convert_to_tensor(given, tf.float32)
    self._check(eps, given)
    log_var = self.log_variance()
    residual = eps - self.rho() * given
    return -0.5 * tf.reduce_sum(
      _LOG_2PI + log_var + tf.square(residual) * tf.exp(-log_var), axis=-1
    )

  def log_prob(self, eps_a, eps_b) -> tf.Tensor:
    """`[...]`: the joint log-density of the pair of codes, log N(eps_A; 0, I) + log p(B | A)."""
    return self.marginal_log_prob(eps_a) + self.conditional_log_prob(eps_b, eps_a)

  def conditional_sample(self, given, temperature: float = 1.0, seed=None, noise=None) -> tf.Tensor:
    """`[..., D]`: rho * given + T sqrt(1 - rho^2) n, n ~ N(0, I); T = 0 is the conditional mean.

    Args:
      given: the other side's code `[..., D]` (eps_A for B given A, or eps_B for A given B).
      temperature: T >= 0, the scale of the conditional noise.
      seed: a stateless seed `[2]` drawing n; needed when T > 0 and `noise` is None.
      noise: n itself, standard normal noise shaped as `given` (one seed per row:
        `glow_tf2.seeds.row_normal`), used instead of `seed`.
    """
    given = tf.convert_to_tensor(given, tf.float32)
    self._check(given)
    mean = self.rho() * given
    if _is_zero(temperature):
      return mean
    if noise is None:
      if seed is None:
        raise ValueError(f"{self.name}: conditional_sample at temperature > 0 needs a seed")
      noise = tf.random.stateless_normal(tf.shape(given), seed)
    return mean + temperature * tf.exp(0.5 * self.log_variance()) * noise

  def sample(self, n: int, temperature: float = 1.0, seed=None) -> tuple[tf.Tensor, tf.Tensor]:
    """(eps_A, eps_B), each `[n, D]`: n matching pairs from the joint scaled by T.

    eps_A = T n_A and eps_B = rho eps_A + T sqrt(1 - rho^2) n_B, i.e. a draw of the pair's
    Gaussian with covariance T^2 [[I, diag(rho)], [diag(rho), I]].

    Args:
      n: pairs to draw.
      temperature: T >= 0 (Glow's sampling temperature; 1 is the model itself).
      seed: a stateless seed `[2]`.
    """
    _is_zero(temperature)  # refuses a negative one
    if seed is None:
      raise ValueError(f"{self.name}: sample needs a stateless seed [2]")
    seeds = tf.random.experimental.stateless_split(seed, 2)
    eps_a = temperature * tf.random.stateless_normal([n, self.data_dim], seeds[0])
    eps_b = self.rho() * eps_a
    noise = tf.random.stateless_normal([n, self.data_dim], seeds[1])
    return eps_a, eps_b + temperature * tf.exp(0.5 * self.log_variance()) * noise


def _is_zero(temperature) -> bool:
  """Whether a Python temperature is 0 (no noise, no seed needed); a negative one is refused."""
  if isinstance(temperature, (int, float)):
    if temperature < 0:
      raise ValueError(f"coupled prior: temperature must be >= 0, got {temperature!r}")
    return temperature == 0
  return False


def _check_pair(glow_a, glow_b, prior: CoupledPrior, what: str) -> None:
  if glow_a.config.data_dim != glow_b.config.data_dim:
    raise ValueError(
      f"{what}: models of different data dims "
      f"({glow_a.config.data_dim} vs {glow_b.config.data_dim})"
    )
  if glow_a.config.eps_shapes != prior.config.eps_shapes:
    raise ValueError(
      f"{what}: the prior's eps layout {prior.config.eps_shapes} is not the models' "
      f"{glow_a.config.eps_shapes}"
    )


def coupled_translation(glow_a, glow_b, prior: CoupledPrior, labels=None) -> tfb.Bijector:
  """The T = 0 translation x_A `[..., H, W, C]` -> x_B as a bijector: decode_B(rho * encode_A(x_A)).

  Chain([glow_b, Scale(rho), Invert(glow_a)]): its log-det is logdet_A(x_A) + sum_d log|rho_d| +
  log|det d x_B / d eps_B|. rho is read from the prior's variable at every call (a
  `DeferredTensor`), so the bijector follows training. It is a bijection when no rho_d is 0.
  `.inverse` is the exact inverse (eps_A = eps_B / rho); the conditional-mean translation
  B -> A is `coupled_translation(glow_b, glow_a, prior)`.
  A class-conditional pair takes the images' class labels (int `[N]`, both sides get the same),
  bound to both flows (`GivenLabels`: a Chain passes keywords only by bijector name).

  Raises:
    ValueError: the flows' dims or eps layout are not the prior's, or labels are given for (or
      missing from) a pair that is not (or is) class-conditional.
  """
  _check_pair(glow_a, glow_b, prior, "coupled_translation")
  glow_a, glow_b = glow_lib.pair_given_labels(glow_a, glow_b, labels, "coupled_translation")
  rho = tfp.util.DeferredTensor(prior.r, lambda _: prior.rho(), shape=[prior.data_dim])
  return tfb.Chain(
    [glow_b, tfb.Scale(rho, name="coupled_rho"), tfb.Invert(glow_a)], name="coupled_translation"
  )


def translate(
  glow_a, glow_b, prior: CoupledPrior, x_a, temperature: float = 0.0, seed=None, labels=None
) -> tf.Tensor:
  """x_B `[N, H, W, C]` = decode_B(rho * eps_A + T sqrt(1 - rho^2) n), eps_A = encode_A(x_A).

  A draw from p(x_B | x_A) at temperature T (T = 1: the model's conditional; T = 0: the
  conditional mean code, the same map as `coupled_translation`). B -> A: swap the models.

  Args:
    glow_a: the source domain's Glow.
    glow_b: the target domain's Glow.
    prior: the `CoupledPrior` the pair was trained with.
    x_a: source images in the models' continuous space `[N, H, W, C]` (`losses.preprocess`).
    temperature: T >= 0.
    seed: a stateless seed `[2]`, needed when T > 0.
    labels: class labels `[N]` of class-conditional models (both sides get the same).
  """
  _check_pair(glow_a, glow_b, prior, "translate")
  eps_a, _ = glow_a.encode(x_a, labels=labels)
  eps_b = prior.conditional_sample(eps_a, temperature, seed)
  return glow_b.decode(eps_b, labels=labels)[0]


def sample_pairs(
  glow_a, glow_b, prior: CoupledPrior, n: int, temperature: float = 1.0, seed=None, labels=None
) -> tuple[tf.Tensor, tf.Tensor]:
  """(x_A, x_B), each `[n, H, W, C]`: n matching pairs drawn from the joint model at T.

  Args:
    glow_a: domain A's Glow.
    glow_b: domain B's Glow.
    prior: the `CoupledPrior` the pair was trained with.
    n: pairs to draw.
    temperature: T >= 0 (`CoupledPrior.sample`).
    seed: a stateless seed `[2]`.
    labels: class labels `[n]` of class-conditional models.
  """
  _check_pair(glow_a, glow_b, prior, "sample_pairs")
  eps_a, eps_b = prior.sample(n, temperature, seed)
  return glow_a.decode(eps_a, labels=labels)[0], glow_b.decode(eps_b, labels=labels)[0]
