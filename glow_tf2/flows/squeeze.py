"""Glow's 2x2 squeeze: space to channels.

Data -> latent (TFP `inverse`): [N, H, W, C] -> [N, H/2, W/2, 4C] by reshaping to
[N, H/2, 2, W/2, 2, C] and transposing to [N, H/2, W/2, C, 2, 2], so the new channel index is
c * 4 + dy * 2 + dx (Glow's order; `tf.nn.space_to_depth` uses (dy * 2 + dx) * C + c instead, a
different permutation that would make checkpoints and codes incompatible with the original).
A reshuffle of entries: log|det| = 0.
"""

import tensorflow as tf

from glow_tf2.flows import base


def squeeze(x: tf.Tensor) -> tf.Tensor:
  """[N, H, W, C] -> [N, H/2, W/2, 4C] in Glow's channel order."""
  _, h, w, c = x.shape
  x = tf.reshape(x, [-1, h // 2, 2, w // 2, 2, c])
  x = tf.transpose(x, [0, 1, 3, 5, 2, 4])
  return tf.reshape(x, [-1, h // 2, w // 2, 4 * c])


def unsqueeze(z: tf.Tensor) -> tf.Tensor:
  """[N, H, W, 4C] -> [N, 2H, 2W, C], the inverse of `squeeze`."""
  _, h, w, c4 = z.shape
  c = c4 // 4
  z = tf.reshape(z, [-1, h, w, c, 2, 2])
  z = tf.transpose(z, [0, 1, 4, 2, 5, 3])
  return tf.reshape(z, [-1, 2 * h, 2 * w, c])


class Squeeze(base.GlowBijector):
  """`forward` unsqueezes (latent -> data), `inverse` squeezes (data -> latent). Static shapes."""

  def __init__(self, name: str = "squeeze"):
    parameters = dict(locals())
    super().__init__(parameters=parameters, name=name)

  def _inverse_and_log_det(self, x):
    return squeeze(x), tf.zeros(tf.shape(x)[:1], x.dtype)

  def _forward_and_log_det(self, z):
    return unsqueeze(z), tf.zeros(tf.shape(z)[:1], z.dtype)

  def _forward_event_shape(self, shape):
    h, w, c = shape[-3:]
    return shape[:-3].concatenate([2 * h, 2 * w, c // 4])

  def _inverse_event_shape(self, shape):
    h, w, c = shape[-3:]
    return shape[:-3].concatenate([h // 2, w // 2, 4 * c])

  def _forward_event_shape_tensor(self, shape):
    return tf.concat([shape[:-3], shape[-3:-1] * 2, shape[-1:] // 4], 0)

  def _inverse_event_shape_tensor(self, shape):
    return tf.concat([shape[:-3], shape[-3:-1] // 2, shape[-1:] * 4], 0)
