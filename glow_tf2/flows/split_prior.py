"""The learned prior of a split, written as a bijector onto a standard normal.

At a split, the channels of z divide into the half that continues up the hierarchy, z1 (first
C/2 channels), and the half that leaves it, z2. Glow models p(z2 | z1) = N(mean, exp(logs)^2) with
[mean, logs] from a zero-initialised conv of z1 (Glow interleaves them, h[..., 0::2] and
h[..., 1::2]; here they are the two channel halves of h, the same model relabelled, see
nets.ZeroConv3x3).

Written as an affine bijector, the standardized latent eps2 ~ N(0, 1) is what leaves the flow:

Data -> latent (TFP `inverse`):  [z1, z2] -> [z1, eps2],  eps2 = (z2 - mean(z1)) * exp(-logs(z1))
                                 log|det| = -sum logs
Latent -> data (TFP `forward`):  z2 = mean(z1) + exp(logs(z1)) * eps2.

So log N(z2; mean, exp(logs)) = log N(eps2; 0, 1) + log|det|, and the whole Glow becomes one
bijector from a standard normal, as TFP's `TransformedDistribution` wants.
"""

import tensorflow as tf

from glow_tf2.flows import base
from glow_tf2.flows import nets
from glow_tf2.flows import precision as precision_lib


class SplitPrior(base.GlowBijector):
  """[z1, z2] <-> [z1, eps2] on `[N, H, W, C]`, shape preserving, C even.

  `precision` is the compute type of the conv giving [mean, logs] (returned as float32).
  """

  def __init__(self, channels: int, precision: str = "float32", name: str = "split_prior"):
    parameters = dict(locals())
    if channels % 2:
      raise ValueError(f"SplitPrior needs an even number of channels, got {channels}")
    self.half = channels // 2
    with tf.name_scope(name):
      self.network = nets.ZeroConv3x3(
        self.half,
        2 * (channels - self.half),
        compute_dtype=precision_lib.compute_dtype(precision),
        name="prior_conv",
      )
    super().__init__(parameters=parameters, name=name)

  def mean_and_logs(self, z1: tf.Tensor):
    mean, logs = tf.split(self.network(z1), 2, axis=-1)
    return mean, logs

  def _inverse_and_log_det(self, z):
    z1, z2 = base.split_channels(z, self.half)
    mean, logs = self.mean_and_logs(z1)
    eps = (z2 - mean) * tf.exp(-logs)
    return tf.concat([z1, eps], -1), -tf.reduce_sum(logs, axis=[1, 2, 3])

  def _forward_and_log_det(self, z):
    z1, eps = base.split_channels(z, self.half)
    mean, logs = self.mean_and_logs(z1)
    return tf.concat([z1, mean + tf.exp(logs) * eps], -1), tf.reduce_sum(logs, axis=[1, 2, 3])
