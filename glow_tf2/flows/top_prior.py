"""The prior of the top level, written as an affine bijector onto a standard normal.

Glow's top prior is N(mean, exp(logs)^2) with [mean, logs] = h split in channel halves (as
Glow does here; it interleaves them only in the split prior), where h = 0 unless
- `learntop`: h = zero-initialised conv of a zero image (with edge bias): a learned mean and
  log-std per channel that may differ at the border. Only the edge-bias part of that conv can
  ever receive a gradient (the rest multiplies zeros), so only that part is created;
- `ycond` (n_classes > 0): h += a zero-initialised linear map of the one-hot class label, the same
  at every position. Labels are passed as the keyword `labels` (TFP's methods already take `y`).

Data -> latent (TFP `inverse`):  eps = (z - mean) * exp(-logs),   log|det| = -sum logs
Latent -> data (TFP `forward`):  z = mean + exp(logs) * eps.
"""

import tensorflow as tf

from glow_tf2.flows import base
from glow_tf2.flows import nets
from glow_tf2.flows import precision as precision_lib


class TopPrior(base.GlowBijector):
  """z <-> eps on the top level `[N, h, w, c]`; `precision` is the learntop conv's compute type."""

  def __init__(
    self,
    shape,
    learntop: bool,
    n_classes: int,
    logscale_factor: float = 3.0,
    precision: str = "float32",
    name: str = "top_prior",
  ):
    parameters = dict(locals())
    self.shape = tuple(int(s) for s in shape)
    self.n_classes = int(n_classes)
    self.logscale_factor = logscale_factor
    channels = self.shape[-1]
    with tf.name_scope(name):
      self.network = None
      if learntop:
        self.network = nets.ZeroConv3x3(
          0, 2 * channels, compute_dtype=precision_lib.compute_dtype(precision), name="top_conv"
        )
      if self.n_classes:
        self.class_kernel = tf.Variable(
          tf.zeros([self.n_classes, 2 * channels]), name="class_kernel"
        )
        self.class_bias = tf.Variable(tf.zeros([2 * channels]), name="class_bias")
        self.class_logs = tf.Variable(tf.zeros([2 * channels]), name="class_logs")
    super().__init__(parameters=parameters, name=name)

  def mean_and_logs(self, labels=None):
    """`[1 or N, h, w, c]` mean and log-std of the prior (N when conditioned on labels)."""
    if self.network is not None:
      h = self.network(tf.zeros((1,) + self.shape[:2] + (0,)))
    else:
      h = tf.zeros((1,) + self.shape[:2] + (2 * self.shape[2],))
    if self.n_classes:
      if labels is None:
        raise ValueError(
          f"{self.name}: a class-conditional prior (n_classes={self.n_classes}) needs `labels`"
        )
      onehot = tf.one_hot(tf.reshape(labels, [-1]), self.n_classes)
      by_class = (onehot @ self.class_kernel + self.class_bias) * tf.exp(
        self.class_logs * self.logscale_factor
      )
      h = h + by_class[:, None, None, :]
    channels = self.shape[2]
    return base.split_channels(h, channels)

  def _inverse_and_log_det(self, z, labels=None):
    mean, logs = self.mean_and_logs(labels)
    ildj = -tf.reduce_sum(logs, axis=[1, 2, 3]) * tf.ones(tf.shape(z)[:1])
    return (z - mean) * tf.exp(-logs), ildj

  def _forward_and_log_det(self, eps, labels=None):
    mean, logs = self.mean_and_logs(labels)
    fldj = tf.reduce_sum(logs, axis=[1, 2, 3]) * tf.ones(tf.shape(eps)[:1])
    return mean + tf.exp(logs) * eps, fldj
