"""One step of flow: ActNorm -> permutation -> coupling (data -> latent order).

With a 1x1 convolution as the permutation, ActNorm is folded into it: both are affine maps of
the channels at every pixel, so (x + b) e^s W = x (diag(e^s) W) + (b e^s) W is one matmul with a
bias instead of three passes over the activations, and decoding likewise
x = (z W^-1) e^-s - b = z (W^-1 diag(e^-s)) - b. The log-dets add as before.

The unit Glow repeats K times per level and the unit of gradient checkpointing: with
`tf.recompute_grad` around a step's encoding, only each step's input is kept for the backward
pass, and its activations are recomputed then (memory O(levels * K * input) instead of all
coupling-network activations).
"""

import numpy as np
import tensorflow as tf

from glow_tf2.flows import actnorm
from glow_tf2.flows import base
from glow_tf2.flows import channel_permutation
from glow_tf2.flows import conv1x1
from glow_tf2.flows import coupling


def make_permutation(kind: str, channels: int, rng: np.random.Generator) -> base.GlowBijector:
  if kind == "reverse":
    return channel_permutation.ChannelPermutation.reverse(channels)
  if kind == "shuffle":
    return channel_permutation.ChannelPermutation.shuffle(channels, seed=rng.integers(2**31))
  if kind == "conv":
    return conv1x1.InvertibleConv1x1(channels, rng)
  if kind == "lu":
    return conv1x1.LUConv1x1(channels, rng)
  raise ValueError(f"permutation must be one of reverse, shuffle, conv, lu; got {kind!r}")


class FlowStep(base.GlowBijector):
  """actnorm -> permutation -> coupling on `[N, H, W, C]`; `precision` is the coupling network's
  compute type (ActNorm and the permutation are float32 always)."""

  def __init__(
    self,
    channels: int,
    width: int,
    permutation: str,
    coupling_kind: str,
    rng: np.random.Generator,
    precision: str = "float32",
    name: str = "flow_step",
  ):
    parameters = dict(locals())
    with tf.name_scope(name):
      self.actnorm = actnorm.ActNorm(channels)
      self.permutation = make_permutation(permutation, channels, rng)
      self.coupling = coupling.Coupling(channels, width, coupling_kind, rng, precision)
    super().__init__(parameters=parameters, name=name)

  def trace_key(self) -> tuple:
    """Every setting of the step's computation besides its variables (see `shared_trace`)."""
    p = self.parameters
    return (p["channels"], p["width"], p["permutation"], p["coupling_kind"], p["precision"])

  def _mixing_inverse(self, x):
    """actnorm then permutation, data -> latent; (h, log_det)."""
    if not isinstance(self.permutation, conv1x1.Conv1x1Base):
      h, ld_norm = self.actnorm._inverse_and_log_det(x)
      h, ld_perm = self.permutation._inverse_and_log_det(h)
      return h, ld_norm + ld_perm
    scale = tf.exp(self.actnorm.log_scale)
    w = self.permutation.matrix()
    h = conv1x1.pixelwise_matmul(x, scale[:, None] * w, bias=(self.actnorm.bias * scale)[None] @ w)
    log_det = base.spatial_size(x) * (
      tf.reduce_sum(self.actnorm.log_scale) + self.permutation.log_abs_det_matrix()
    )
    return h, tf.fill(tf.shape(x)[:1], log_det)

  def _mixing_forward(self, h):
    """permutation then actnorm, latent -> data; (x, log_det)."""
    if not isinstance(self.permutation, conv1x1.Conv1x1Base):
      h, ld_perm = self.permutation._forward_and_log_det(h)
      x, ld_norm = self.actnorm._forward_and_log_det(h)
      return x, ld_norm + ld_perm
    inverse_scale = tf.exp(-self.actnorm.log_scale)
    w_inv = self.permutation.inverse_matrix()
    x = conv1x1.pixelwise_matmul(h, w_inv * inverse_scale[None], bias=-self.actnorm.bias[None])
    log_det = -base.spatial_size(h) * (
      tf.reduce_sum(self.actnorm.log_scale) + self.permutation.log_abs_det_matrix()
    )
    return x, tf.fill(tf.shape(h)[:1], log_det)

  def _inverse_and_log_det(self, x):
    h, ld_mixing = self._mixing_inverse(x)
    z, ld_coupling = self.coupling._inverse_and_log_det(h)
    return z, ld_mixing + ld_coupling

  def _forward_and_log_det(self, z):
    h, ld_coupling = self.coupling._forward_and_log_det(z)
    x, ld_mixing = self._mixing_forward(h)
    return x, ld_mixing + ld_coupling

  def initialize(self, x: tf.Tensor) -> tf.Tensor:
    """Data-dependent init of every ActNorm in the step on x; returns the encoded batch."""
    h = self.actnorm.initialize(x)
    h, _ = self.permutation._inverse_and_log_det(h)
    return self.coupling.initialize(h)
