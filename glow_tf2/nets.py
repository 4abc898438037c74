"""The small convolutional networks inside Glow's couplings and priors.

All are `tf.Module`s over plain `tf.Variable`s (Keras 3 layers inside a TFP bijector are not
tracked by `tf.Module.trainable_variables`, so their weights would silently never train).

Glow's 3x3 convolutions pad with zeros and append one constant channel that is 1 on the padded
border and 0 inside ("edge bias"), so a filter can tell a real zero from the image edge. The
border channel is the same for every image, so its contribution is computed once per call on a
`[1, H, W, C_out]` map and broadcast, instead of concatenating a channel to every activation:

    conv(concat[pad(x), border]) = conv_same(x, k[:, :, :C]) + conv_valid(border, k[:, :, C:]).
"""

import numpy as np
import tensorflow as tf

from glow_tf2.bijectors import actnorm


def _border_response(x: tf.Tensor, border_kernel: tf.Tensor) -> tf.Tensor:
  """The 3x3 conv of the edge-bias channel for images shaped like x: `[1, H, W, C_out]`."""
  shape = tf.shape(x)
  inside = tf.zeros([1, shape[1], shape[2], 1], x.dtype)
  border = tf.pad(inside, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=1.0)
  return tf.nn.conv2d(border, border_kernel, strides=1, padding="VALID")


class Conv3x3(tf.Module):
  """3x3 conv with edge bias and no bias of its own; kernel ~ N(0, 0.05)."""

  def __init__(self, in_channels: int, out_channels: int, rng: np.random.Generator,
               stddev: float = 0.05, name: str = "conv3x3"):
    super().__init__(name=name)
    kernel = rng.normal(0.0, stddev, size=(3, 3, in_channels + 1, out_channels))
    with self.name_scope:
      self.kernel = tf.Variable(kernel.astype(np.float32), name="kernel")
    self.in_channels = in_channels

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    main = tf.nn.conv2d(x, self.kernel[:, :, :self.in_channels], strides=1, padding="SAME")
    return main + _border_response(x, self.kernel[:, :, self.in_channels:])


class ZeroConv3x3(tf.Module):
  """Glow's zero-initialised output conv: (conv3x3_edge(x) + b) * exp(3 * logs).

  Everything starts at zero, so a coupling starts as the identity and a prior as N(0, 1); the
  exp(3 * logs) factor lets the output scale be learned faster than the kernel.

  With `deinterleave=True` the output channels come out reordered as [even..., odd...]: Glow
  reads its (shift, scale) and (mean, logs) pairs interleaved, h[..., 0::2] and h[..., 1::2], and a
  stride-2 slice of the channel axis of an activation costs more on CPU than the whole conv
  (about 10x a contiguous slice). Reordering the columns of the small weights instead gives the
  same numbers for the same variables, and the halves are then contiguous.
  """

  def __init__(self, in_channels: int, out_channels: int, logscale_factor: float = 3.0,
               deinterleave: bool = False, name: str = "zero_conv3x3"):
    super().__init__(name=name)
    with self.name_scope:
      self.kernel = tf.Variable(tf.zeros([3, 3, in_channels + 1, out_channels]), name="kernel")
      self.bias = tf.Variable(tf.zeros([out_channels]), name="bias")
      self.logs = tf.Variable(tf.zeros([out_channels]), name="logs")
    self.in_channels = in_channels
    self.logscale_factor = logscale_factor
    self._order = (np.concatenate([np.arange(0, out_channels, 2), np.arange(1, out_channels, 2)])
                   if deinterleave else None)

  def _weights(self):
    if self._order is None:
      return self.kernel, self.bias, self.logs
    return (tf.gather(self.kernel, self._order, axis=3), tf.gather(self.bias, self._order),
            tf.gather(self.logs, self._order))

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    kernel, bias, logs = self._weights()
    h = _border_response(x, kernel[:, :, self.in_channels:]) + bias
    if self.in_channels:  # in_channels = 0: a learned map of the border alone (Glow's learntop)
      h += tf.nn.conv2d(x, kernel[:, :, :self.in_channels], strides=1, padding="SAME")
    return h * tf.exp(logs * self.logscale_factor)


class CouplingNetwork(tf.Module):
  """f(z1) of a coupling: conv3x3 + actnorm -> ReLU -> conv1x1 + actnorm -> ReLU -> zero conv3x3."""

  def __init__(self, in_channels: int, width: int, out_channels: int, rng: np.random.Generator,
               deinterleave: bool = False, name: str = "coupling_network"):
    super().__init__(name=name)
    with self.name_scope:
      self.conv_in = Conv3x3(in_channels, width, rng, name="conv_in")
      self.norm_in = actnorm.ActNorm(width, name="actnorm_in")
      self.kernel_hidden = tf.Variable(
          rng.normal(0.0, 0.05, size=(width, width)).astype(np.float32), name="kernel_hidden")
      self.norm_hidden = actnorm.ActNorm(width, name="actnorm_hidden")
      self.conv_out = ZeroConv3x3(width, out_channels, deinterleave=deinterleave, name="conv_out")

  def _hidden_1x1(self, h: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(h)
    out = tf.matmul(tf.reshape(h, [-1, shape[-1]]), self.kernel_hidden)
    return tf.reshape(out, tf.concat([shape[:-1], [-1]], 0))

  def _run(self, z1: tf.Tensor, init: bool) -> tf.Tensor:
    h = self.conv_in(z1)
    h = tf.nn.relu(self.norm_in.initialize(h) if init else self.norm_in.normalize(h))
    h = self._hidden_1x1(h)
    h = tf.nn.relu(self.norm_hidden.initialize(h) if init else self.norm_hidden.normalize(h))
    return self.conv_out(h)

  def __call__(self, z1: tf.Tensor) -> tf.Tensor:
    return self._run(z1, init=False)

  def initialize(self, z1: tf.Tensor) -> tf.Tensor:
    """Data-dependent init of the hidden ActNorms on this batch; returns f(z1)."""
    return self._run(z1, init=True)
