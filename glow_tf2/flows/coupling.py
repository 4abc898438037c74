"""Glow's affine and additive coupling layers (Dinh et al. 2017; Kingma & Dhariwal 2018).

The channels split in halves, x = [x1, x2] (x1 the first C/2 channels); x1 passes unchanged and
conditions the update of x2 through the network h = f(x1) (`nets.CouplingNetwork`).

Data -> latent (TFP `inverse`):
  additive:  z2 = x2 + h                                       log|det| = 0
  affine:    z2 = (x2 + t) * sigmoid(r + 2),  [t, r] = h split in channel halves
             log|det dz/dx| = sum log sigmoid(r + 2)
Latent -> data (TFP `forward`): x2 = z2 - h, or x2 = z2 / sigmoid(r + 2) - t.

(Glow reads t and r interleaved, h[..., 0::2] and h[..., 1::2]; contiguous halves are the same
model with the zero-initialised output channels relabelled, and cheaper: see nets.ZeroConv3x3.)

The sigmoid bounds the scale to (0, 1), which keeps Glow's training stable; the +2 starts it near
0.88. Because the network's last conv is zero-initialised, every coupling starts as z2 = 0.88 x2
(affine) or the identity (additive). log sigmoid is computed as `log_sigmoid`, which does not
underflow to -inf for very negative r.

One guard the original lacks: the logit u = r + 2 is floored softly at -10,
u' = -10 + softplus(u + 10) (= u to within 5e-5 for u > 0), so a scale never drops below
sigmoid(-10) = 4.5e-5 and one coupling's latent -> data map amplifies by at most 1 + e^10.
Without it, decoding a latent that no image maps to (another model's code, in a translation)
can drive r to -90 and overflow exp(-log sigmoid) to inf. The map stays an exact bijection: the
scale is any function of x1, which both directions see.
"""

import numpy as np
import tensorflow as tf

from glow_tf2.flows import base
from glow_tf2.flows import nets
from glow_tf2.flows import precision as precision_lib

KINDS = ("additive", "affine")
# Soft floor of the scale logit r + 2 (see the module docstring).
MIN_LOGIT = -10.0


class Coupling(base.GlowBijector):
  """An additive or affine coupling on `[N, H, W, C]`, C even.

  `precision` ("float32" | "mixed_bfloat16" | "mixed_float16") is the compute type of the network
  f only; its output is float32 and the update of x2 and the log-det are float32 arithmetic.
  """

  def __init__(
    self,
    channels: int,
    width: int,
    kind: str,
    rng: np.random.Generator,
    precision: str = "float32",
    name: str = "coupling",
  ):
    parameters = dict(locals())
    if kind not in KINDS:
      raise ValueError(f"Coupling kind must be one of {KINDS}, got {kind!r}")
    if channels % 2:
      raise ValueError(f"Coupling needs an even number of channels, got {channels}")
    self.kind = kind
    self.half = channels // 2
    out_channels = channels - self.half if kind == "additive" else 2 * (channels - self.half)
    with tf.name_scope(name):
      self.network = nets.CouplingNetwork(
        self.half, width, out_channels, rng, compute_dtype=precision_lib.compute_dtype(precision)
      )
    super().__init__(parameters=parameters, name=name)

  def _shift_and_log_scale(self, h):
    """(shift, log_scale) from the network output; log_scale is None for additive coupling."""
    if self.kind == "additive":
      return h, None
    shift, raw_scale = tf.split(h, 2, axis=-1)
    logit = MIN_LOGIT + tf.nn.softplus(raw_scale + 2.0 - MIN_LOGIT)
    return shift, tf.math.log_sigmoid(logit)

  def _encode(self, x1, x2, h):
    shift, log_scale = self._shift_and_log_scale(h)
    if log_scale is None:
      return tf.concat([x1, x2 + shift], -1), tf.zeros(tf.shape(x1)[:1], x1.dtype)
    z2 = (x2 + shift) * tf.exp(log_scale)
    return tf.concat([x1, z2], -1), tf.reduce_sum(log_scale, axis=[1, 2, 3])

  def _inverse_and_log_det(self, x):
    x1, x2 = base.split_channels(x, self.half)
    return self._encode(x1, x2, self.network(x1))

  def _forward_and_log_det(self, z):
    z1, z2 = base.split_channels(z, self.half)
    shift, log_scale = self._shift_and_log_scale(self.network(z1))
    if log_scale is None:
      return tf.concat([z1, z2 - shift], -1), tf.zeros(tf.shape(z)[:1], z.dtype)
    x2 = z2 * tf.exp(-log_scale) - shift
    return tf.concat([z1, x2], -1), -tf.reduce_sum(log_scale, axis=[1, 2, 3])

  def initialize(self, x: tf.Tensor) -> tf.Tensor:
    """Data-dependent init of the network's ActNorms on x; returns the encoded batch."""
    x1, x2 = base.split_channels(x, self.half)
    return self._encode(x1, x2, self.network.initialize(x1))[0]
