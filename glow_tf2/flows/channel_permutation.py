"""A fixed permutation of channels: Glow's `reverse` and `shuffle` layers.

Data -> latent: z[..., i] = x[..., p[i]];  latent -> data: x[..., p[i]] = z[..., i].
A permutation is volume preserving: log|det| = 0.

`reverse` uses p = (C-1, ..., 0) (RealNVP's alternation of the halves a coupling updates);
`shuffle` draws p once at random. p is stored as a non-trainable variable so that a checkpoint
restores the very permutation the weights were trained with.
"""

import numpy as np
import tensorflow as tf

from glow_tf2.flows import base


class ChannelPermutation(base.GlowBijector):
  """Permutes the last axis of `[N, H, W, C]` by a fixed permutation."""

  def __init__(self, permutation, name: str = "channel_permutation"):
    parameters = dict(locals())
    permutation = np.asarray(permutation, dtype=np.int32)
    if sorted(permutation.tolist()) != list(range(len(permutation))):
      raise ValueError(f"ChannelPermutation: {permutation.tolist()} is not a permutation of 0..C-1")
    with tf.name_scope(name):
      self.permutation = tf.Variable(permutation, trainable=False, name="permutation")
    super().__init__(parameters=parameters, name=name)

  @classmethod
  def reverse(cls, channels: int, name: str = "reverse"):
    return cls(np.arange(channels)[::-1], name=name)

  @classmethod
  def shuffle(cls, channels: int, seed=None, name: str = "shuffle"):
    return cls(np.random.default_rng(seed).permutation(channels), name=name)

  def _zero_log_det(self, x):
    return tf.zeros(tf.shape(x)[:1], x.dtype)

  def _inverse_and_log_det(self, x):
    return tf.gather(x, self.permutation, axis=-1), self._zero_log_det(x)

  def _forward_and_log_det(self, z):
    inverse_permutation = tf.math.invert_permutation(self.permutation)
    return tf.gather(z, inverse_permutation, axis=-1), self._zero_log_det(z)
