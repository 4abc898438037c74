"""Variational dequantisation (Flow++, Ho et al. 2019): a learned noise q(u | k) inside each bin.

With n_bins = 2**n_bits_x levels, a discrete image k in {0, ..., n_bins - 1}^D is lifted to the
continuous x = k / n_bins - 0.5 + u / n_bins, u in (0, 1)^D. For any density q(u | k) on the unit
cube, Jensen's inequality gives the bound the flow p is trained on:

    log P(k) = log E_{u ~ q}[p(x(k, u)) n_bins^-D / q(u | k)]
            >= E_{u ~ q}[log p(x(k, u)) - D log n_bins - log q(u | k)],

whose gap is KL(q(u | k) || p(u | k)). Uniform noise is the special case q = 1 (log q = 0), the
bound Glow reports; a learned q can only tighten it. Bits/dim of the bound = -(bound) / (D ln 2).

Here u = sigmoid(z), z = logit Phi(y), y = f(eps; k): eps ~ N(0, I) `[N, H, W, C]`, f a small
flow conditioned on features h(k) of the discrete image (two 3x3 convolutions of its centred
values), Phi the standard normal CDF. So u = Phi(y), computed as such (not through the logit):

    eps --squeeze 2x2--> [e1, e2] --conditional affine couplings--> --unsqueeze--> y'
    y = y' * exp(a) + b        (a, b per image channel, both starting at 0)
    u = Phi(y)

Each coupling updates one channel half given the other half and the features (squeezed like
eps): y_j <- y_j * exp(s) + t with [t, r] = g(y_other, squeeze(h)), s = S tanh(r / S), S = 2, the
half alternating between couplings. Squeezing first gives even a 1-channel image two halves.
g ends in a zero-initialised conv, so every coupling starts as the identity, and then
u = Phi(eps) is exactly uniform: q starts as the uniform noise (log q = 0), the bound at the
uniform one, and training moves it down from there. (Flow++'s u = sigmoid(eps) would start with a
logit-normal q, 0.28 bits/dim above the uniform bound; the fixed bijection z = logit Phi(y)
in front of the sigmoid is the difference.)

    log q(u | k) = sum log N(eps; 0, I) - log|det dy/deps| - sum log phi(y),
    log|det dy/deps| = sum_couplings sum s + H W sum_c a_c,
    log phi(y) = log N(y; 0, 1), the derivative of Phi.

eps is given, not drawn here, so the trainer keeps its stateless per-row noise. Everything runs
in float32 (the network is small; mixed precision would gain nothing). Phi(y) rounds to 1 in
float32 for y > 5.4 (never below 0): x then lies on the top edge of its bin, a point of measure
zero where the flow's density is as finite as anywhere.
"""

import math

import numpy as np
import tensorflow as tf

from glow_tf2.flows import nets
from glow_tf2.flows import squeeze as squeeze_lib

# Bound of a coupling's log-scale: s = S tanh(r / S), so a coupling stretches by at most e^S.
MAX_LOG_SCALE = 2.0


def centred(images, n_bits_x: int) -> tf.Tensor:
  """uint8 images -> the centres of their bins, k / n_bins - 0.5 + 0.5 / n_bins, in (-0.5, 0.5)."""
  n_bins = 2.0**n_bits_x
  k = tf.cast(images, tf.float32)
  if n_bits_x < 8:
    k = tf.floor(k / 2.0 ** (8 - n_bits_x))
  return (k + 0.5) / n_bins - 0.5


def _sum_per_example(t) -> tf.Tensor:
  return tf.reduce_sum(t, axis=[1, 2, 3])


def _log_normal(t) -> tf.Tensor:
  """sum log N(t; 0, I) per example `[N]` (also sum log phi(t), Phi's log-derivative)."""
  return -0.5 * _sum_per_example(tf.square(t) + math.log(2.0 * math.pi))


def normal_cdf(y) -> tf.Tensor:
  """Phi(y) = erfc(-y / sqrt 2) / 2: accurate in the lower tail, where 1 - Phi would not be."""
  return 0.5 * tf.math.erfc(-y / math.sqrt(2.0))


class _Conv(tf.Module):
  """Glow's edge-bias 3x3 conv with a bias, kernel ~ N(0, 0.05)."""

  def __init__(self, in_channels: int, out_channels: int, rng: np.random.Generator, name: str):
    super().__init__(name=name)
    with self.name_scope:
      self.conv = nets.Conv3x3(in_channels, out_channels, rng, name="conv")
      self.bias = tf.Variable(tf.zeros([out_channels]), name="bias")

  def __call__(self, x):
    return nets.conv3x3_edge(x, self.conv.kernel, self.bias)


class ConditionalCoupling(tf.Module):
  """y_j <- y_j * exp(s) + t, [t, r] = g(y_other, features), s = S tanh(r / S); j alternates.

  g: edge-bias 3x3 conv -> ReLU -> zero-initialised 3x3 conv, so the coupling starts as the
  identity. `forward` returns (y', log|det dy'/dy| `[N]`) = (y', sum s).
  """

  def __init__(
    self,
    channels: int,
    feature_channels: int,
    width: int,
    update_first: bool,
    rng: np.random.Generator,
    name: str,
  ):
    super().__init__(name=name)
    self.half = channels // 2
    self.update_first = update_first
    with self.name_scope:
      self.hidden = _Conv(channels - self.half + feature_channels, width, rng, name="hidden")
      self.out = nets.ZeroConv3x3(width, 2 * self.half, name="out")

  def _halves(self, y):
    first, second = y[..., : self.half], y[..., self.half :]
    return (first, second) if self.update_first else (second, first)

  def _join(self, updated, kept):
    return tf.concat([updated, kept] if self.update_first else [kept, updated], -1)

  def _shift_and_log_scale(self, kept, features):
    h = self.out(tf.nn.relu(self.hidden(tf.concat([kept, features], -1))))
    shift, raw = tf.split(h, 2, axis=-1)
    return shift, MAX_LOG_SCALE * tf.tanh(raw / MAX_LOG_SCALE)

  def forward(self, y, features):
    updated, kept = self._halves(y)
    shift, log_scale = self._shift_and_log_scale(kept, features)
    return self._join(updated * tf.exp(log_scale) + shift, kept), _sum_per_example(log_scale)

  def inverse(self, y, features):
    """The inverse map and log|det| of the forward one (the same sign: forward's log-det)."""
    updated, kept = self._halves(y)
    shift, log_scale = self._shift_and_log_scale(kept, features)
    return self._join((updated - shift) * tf.exp(-log_scale), kept), _sum_per_example(log_scale)


class Dequantizer(tf.Module):
  """q(u | k) of the module docstring for images of `image_shape` (H, W even).

  Args:
    image_shape: (H, W, C) of the images.
    seed: seeds the initial weights.
    width: channels of the feature convolutions and of each coupling's hidden layer.
    n_couplings: conditional couplings (the updated half alternates).
  """

  def __init__(
    self,
    image_shape,
    seed: int = 0,
    width: int = 32,
    n_couplings: int = 4,
    name: str = "dequantizer",
  ):
    super().__init__(name=name)
    h, w, c = (int(s) for s in image_shape)
    if h % 2 or w % 2:
      raise ValueError(f"Dequantizer: H and W must be even, got {image_shape}")
    self.image_shape = (h, w, c)
    rng = np.random.default_rng(seed)
    with self.name_scope:
      self.features_in = _Conv(c, width, rng, name="features_in")
      self.features_out = _Conv(width, width, rng, name="features_out")
      self.couplings = [
        ConditionalCoupling(4 * c, 4 * width, width, i % 2 == 1, rng, name=f"coupling_{i}")
        for i in range(n_couplings)
      ]
      self.log_scale = tf.Variable(tf.zeros([c]), name="log_scale")
      self.shift = tf.Variable(tf.zeros([c]), name="shift")

  def features(self, images, n_bits_x: int) -> tf.Tensor:
    """h(k), squeezed 2x2 like eps: `[N, H/2, W/2, 4 width]`."""
    h = tf.nn.relu(self.features_in(centred(images, n_bits_x)))
    return squeeze_lib.squeeze(tf.nn.relu(self.features_out(h)))

  def _affine_log_det(self) -> tf.Tensor:
    h, w, _ = self.image_shape
    return h * w * tf.reduce_sum(self.log_scale)

  def probits(self, images, n_bits_x: int, eps):
    """(y, log|det dy/deps| `[N]`) of eps `[N, H, W, C]` given the images (u = Phi(y))."""
    features = self.features(images, n_bits_x)
    y = squeeze_lib.squeeze(tf.convert_to_tensor(eps, tf.float32))
    log_det = tf.zeros(tf.shape(y)[:1])
    for coupling in self.couplings:
      y, ld = coupling.forward(y, features)
      log_det += ld
    y = squeeze_lib.unsqueeze(y) * tf.exp(self.log_scale) + self.shift
    return y, log_det + self._affine_log_det()

  def sample(self, images, n_bits_x: int, eps):
    """(x `[N, H, W, C]` in [-0.5, 0.5], log q(u | k) `[N]`) for uint8 images and eps ~ N(0, I).

    x = k / n_bins - 0.5 + u / n_bins with u = Phi(y(eps; k)), a sample of q(u | k) when eps
    is standard normal.
    """
    eps = tf.convert_to_tensor(eps, tf.float32)
    y, log_det = self.probits(images, n_bits_x, eps)
    log_q = _log_normal(eps) - log_det - _log_normal(y)
    x = centred(images, n_bits_x) + (normal_cdf(y) - 0.5) / 2.0**n_bits_x
    return x, log_q

  def log_prob(self, images, n_bits_x: int, u):
    """log q(u | k) `[N]` of given u `[N, H, W, C]` in (0, 1): `sample`'s map inverted."""
    y = tf.math.ndtri(tf.convert_to_tensor(u, tf.float32))
    t = squeeze_lib.squeeze((y - self.shift) * tf.exp(-self.log_scale))
    features = self.features(images, n_bits_x)
    log_det = tf.zeros(tf.shape(t)[:1]) + self._affine_log_det()
    for coupling in reversed(self.couplings):
      t, ld = coupling.inverse(t, features)
      log_det += ld
    return _log_normal(squeeze_lib.unsqueeze(t)) - log_det - _log_normal(y)
