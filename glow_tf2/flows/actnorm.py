"""ActNorm: a per-channel affine map with data-dependent initialisation.

Data -> latent (TFP `inverse`):   z = (x + b) * exp(s)
Latent -> data (TFP `forward`):   x = z * exp(-s) - b
log|det dz/dx| = H * W * sum_c s_c.

`initialize(x)` sets b = -mean(x) and s = log(1 / (std(x) + 1e-6)) per channel over (N, H, W), so
the outputs on that batch have zero mean and unit variance (Kingma & Dhariwal 2018, section 3.1).
As in the original, s is stored divided by `logscale_factor` (3): a reparameterisation that makes
the optimiser move s faster than b.

The same class normalises the hidden layers of coupling networks (where the original used ActNorm
in place of a bias); there only `normalize` (the data -> latent map) is used.
"""

import tensorflow as tf

from glow_tf2.flows import base


class ActNorm(base.GlowBijector):
  """Per-channel affine normalisation, `forward_min_event_ndims` = 3 (`[N, H, W, C]`)."""

  def __init__(self, channels: int, logscale_factor: float = 3.0, name: str = "actnorm"):
    parameters = dict(locals())
    with tf.name_scope(name) as scope:
      self.bias = tf.Variable(tf.zeros([channels]), name="bias")
      self.logs = tf.Variable(tf.zeros([channels]), name="logs")
    self.channels = channels
    self.logscale_factor = float(logscale_factor)
    super().__init__(parameters=parameters, name=name)

  @property
  def log_scale(self) -> tf.Tensor:
    return self.logs * self.logscale_factor

  def normalize(self, x: tf.Tensor) -> tf.Tensor:
    """The data -> latent map alone, (x + b) * exp(s)."""
    return (x + self.bias) * tf.exp(self.log_scale)

  def initialize(self, x: tf.Tensor) -> tf.Tensor:
    """Sets b and s from a data batch `[N, H, W, C]`; returns the normalised batch."""
    mean, var = tf.nn.moments(x, axes=[0, 1, 2])
    self.bias.assign(-mean)
    self.logs.assign(tf.math.log(1.0 / (tf.sqrt(var) + 1e-6)) / self.logscale_factor)
    return self.normalize(x)

  def _inverse_and_log_det(self, x):
    ildj = base.spatial_size(x) * tf.reduce_sum(self.log_scale)
    return self.normalize(x), tf.fill(tf.shape(x)[:1], ildj)

  def _forward_and_log_det(self, z):
    log_scale = self.log_scale
    fldj = -base.spatial_size(z) * tf.reduce_sum(log_scale)
    return z * tf.exp(-log_scale) - self.bias, tf.fill(tf.shape(z)[:1], fldj)
