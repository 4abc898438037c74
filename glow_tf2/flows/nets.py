"""The small convolutional networks inside Glow's couplings and priors.

All are `tf.Module`s over plain `tf.Variable`s (Keras 3 layers inside a TFP bijector are not
tracked by `tf.Module.trainable_variables`, so their weights would silently never train).

Glow's 3x3 convolutions pad with zeros and append one constant channel that is 1 on the padded
border and 0 inside ("edge bias"), so a filter can tell a real zero from the image edge. The
border channel is the same for every image, so its contribution is computed once per call on a
`[1, H, W, C_out]` map and broadcast, instead of concatenating a channel to every activation:

    conv(concat[pad(x), border]) = conv_same(x, k[:, :, :C]) + conv_valid(border, k[:, :, C:]).

Speed: every per-channel affine map that follows a linear layer is folded into that layer's weights
before the layer runs, so a hidden layer is one conv (or matmul) plus one add and a ReLU, instead
of four passes over the activations:

    ActNorm(conv(x, k)) = (conv(x, k) + b) * e^s = conv(x, k * e^s) + b * e^s,
    ZeroConv:  (conv(x, k) + border + b) * e^(3 logs) = conv(x, k e^(3 logs)) + (border + b) e^(3 logs).

`reference` methods compute the same functions unfolded, step by step as Glow writes them; data-
dependent init uses them (it needs the raw conv outputs) and tests check the two against each other.

Precision: with a 16-bit `compute_dtype` (see `flows.precision`) a network casts its input and
its folded weights (folded in float32, then cast once) to that dtype, computes every conv, matmul,
bias and ReLU in it, and returns float32 from its last layer, so what follows (a coupling's affine
map, a prior's standardisation, every log-det) stays float32. `reference` and the data-dependent
init always compute in float32: they are the statistics and the checks, not the hot path.
"""

import functools

import numpy as np
import tensorflow as tf

from glow_tf2.flows import actnorm
from glow_tf2.flows import precision


@functools.lru_cache(maxsize=None)
def _border_patches(height: int, width: int) -> np.ndarray:
  """`[H*W, 9]`: the 3x3 neighbourhood of every pixel in the edge-bias channel (1 off the image)."""
  marker = np.pad(np.zeros((height, width), np.float32), 1, constant_values=1.0)
  taps = [marker[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)]
  return np.stack(taps, axis=-1).reshape(height * width, 9)


def _border_response(x: tf.Tensor, border_kernel: tf.Tensor) -> tf.Tensor:
  """The 3x3 conv of the edge-bias channel for images shaped like x: `[1, H, W, C_out]`.

  With H and W known when tracing (every model here), it is a `[H*W, 9] @ [9, C_out]` matmul
  against constant patches: a convolution with one input channel costs oneDNN about 0.5 ms for
  its filter gradient whatever its size, 48 of them a step of the reference model.
  """
  height, width = x.shape[1], x.shape[2]
  out_channels = border_kernel.shape[-1]
  if height is None or width is None:
    shape = tf.shape(x)
    inside = tf.zeros([1, shape[1], shape[2], 1], x.dtype)
    border = tf.pad(inside, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=1.0)
    return tf.nn.conv2d(border, border_kernel, strides=1, padding="VALID")
  patches = tf.constant(_border_patches(height, width), dtype=x.dtype)
  response = tf.matmul(patches, tf.reshape(border_kernel, [9, out_channels]))
  return tf.reshape(response, [1, height, width, out_channels])


def conv3x3_edge(x: tf.Tensor, kernel: tf.Tensor, bias=0.0) -> tf.Tensor:
  """Glow's edge-bias 3x3 conv plus a bias: kernel `[3, 3, C + 1, C_out]`, the last input channel
  being the border marker. x may have C = 0 channels (only the border term is left)."""
  in_channels = kernel.shape[2] - 1
  main_kernel, border_kernel = tf.split(kernel, [in_channels, 1], axis=2)
  h = _border_response(x, border_kernel) + bias
  if in_channels:
    h = tf.nn.conv2d(x, main_kernel, strides=1, padding="SAME") + h
  return h


def _pixelwise_dense(h: tf.Tensor, kernel: tf.Tensor, bias=None) -> tf.Tensor:
  """A 1x1 conv as one matmul on `[N*H*W, C]` (plus bias), which grappler fuses with a ReLU."""
  shape = tf.shape(h)
  out = tf.matmul(tf.reshape(h, [-1, shape[-1]]), kernel)
  if bias is not None:
    out = tf.nn.bias_add(out, bias)
  return out, tf.concat([shape[:-1], [kernel.shape[-1]]], 0)


class Conv3x3(tf.Module):
  """3x3 conv with edge bias and no bias of its own; kernel ~ N(0, 0.05)."""

  def __init__(
    self,
    in_channels: int,
    out_channels: int,
    rng: np.random.Generator,
    stddev: float = 0.05,
    name: str = "conv3x3",
  ):
    super().__init__(name=name)
    kernel = rng.normal(0.0, stddev, size=(3, 3, in_channels + 1, out_channels))
    with self.name_scope:
      self.kernel = tf.Variable(kernel.astype(np.float32), name="kernel")

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    return conv3x3_edge(x, self.kernel)


class ZeroConv3x3(tf.Module):
  """Glow's zero-initialised output conv: (conv3x3_edge(x) + b) * exp(3 * logs).

  Everything starts at zero, so a coupling starts as the identity and a prior as N(0, 1); the
  exp(3 * logs) factor lets the output scale be learned faster than the kernel.

  Where a layer reads two maps from the output (shift and scale, mean and log-std), it reads
  them as the two contiguous halves of the channels. Glow reads them interleaved,
  h[..., 0::2] and h[..., 1::2]; that is only a relabelling of the output channels of a conv
  that starts at zero, so the model and its training are the same, while a stride-2 slice of the
  channel axis costs more on CPU than the conv itself (weights of Glow's layout would need
  their output channels reordered to [even..., odd...] to load here).
  """

  def __init__(
    self,
    in_channels: int,
    out_channels: int,
    logscale_factor: float = 3.0,
    compute_dtype: tf.DType = tf.float32,
    name: str = "zero_conv3x3",
  ):
    super().__init__(name=name)
    with self.name_scope:
      self.kernel = tf.Variable(tf.zeros([3, 3, in_channels + 1, out_channels]), name="kernel")
      self.bias = tf.Variable(tf.zeros([out_channels]), name="bias")
      self.logs = tf.Variable(tf.zeros([out_channels]), name="logs")
    self.logscale_factor = logscale_factor
    self.compute_dtype = compute_dtype

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    """The layer in `compute_dtype` on x of any float dtype; returns float32."""
    scale = tf.exp(self.logs * self.logscale_factor)
    dtype = self.compute_dtype
    h = conv3x3_edge(
      precision.cast(x, dtype),
      precision.cast(self.kernel * scale, dtype),
      precision.cast(self.bias * scale, dtype),
    )
    return precision.cast(h, tf.float32)

  def reference(self, x: tf.Tensor) -> tf.Tensor:
    return (conv3x3_edge(x, self.kernel) + self.bias) * tf.exp(self.logs * self.logscale_factor)


class CouplingNetwork(tf.Module):
  """f(z1) of a coupling: conv3x3 + actnorm -> ReLU -> conv1x1 + actnorm -> ReLU -> zero conv3x3."""

  def __init__(
    self,
    in_channels: int,
    width: int,
    out_channels: int,
    rng: np.random.Generator,
    compute_dtype: tf.DType = tf.float32,
    name: str = "coupling_network",
  ):
    super().__init__(name=name)
    self.compute_dtype = compute_dtype
    with self.name_scope:
      self.conv_in = Conv3x3(in_channels, width, rng, name="conv_in")
      self.norm_in = actnorm.ActNorm(width, name="actnorm_in")
      self.kernel_hidden = tf.Variable(
        rng.normal(0.0, 0.05, size=(width, width)).astype(np.float32), name="kernel_hidden"
      )
      self.norm_hidden = actnorm.ActNorm(width, name="actnorm_hidden")
      self.conv_out = ZeroConv3x3(width, out_channels, compute_dtype=compute_dtype, name="conv_out")

  def hidden(self, z1: tf.Tensor) -> tf.Tensor:
    """The activations entering the output conv (in `compute_dtype`), every ActNorm folded into
    its layer in float32 before the folded weights are cast."""
    dtype = self.compute_dtype
    scale_in = tf.exp(self.norm_in.log_scale)
    h = conv3x3_edge(
      precision.cast(z1, dtype),
      precision.cast(self.conv_in.kernel * scale_in, dtype),
      precision.cast(self.norm_in.bias * scale_in, dtype),
    )
    scale_hidden = tf.exp(self.norm_hidden.log_scale)
    h, shape = _pixelwise_dense(
      tf.nn.relu(h),
      precision.cast(self.kernel_hidden * scale_hidden, dtype),
      precision.cast(self.norm_hidden.bias * scale_hidden, dtype),
    )
    return tf.reshape(tf.nn.relu(h), shape)

  def _hidden_reference(self, z1: tf.Tensor, init: bool) -> tf.Tensor:
    h = self.conv_in(z1)
    h = tf.nn.relu(self.norm_in.initialize(h) if init else self.norm_in.normalize(h))
    h, shape = _pixelwise_dense(h, self.kernel_hidden)
    h = tf.reshape(h, shape)
    return tf.nn.relu(self.norm_hidden.initialize(h) if init else self.norm_hidden.normalize(h))

  def hidden_reference(self, z1: tf.Tensor) -> tf.Tensor:
    """`hidden`, unfolded: conv, ActNorm, ReLU, matmul, ActNorm, ReLU."""
    return self._hidden_reference(z1, init=False)

  def __call__(self, z1: tf.Tensor) -> tf.Tensor:
    """f(z1) `[N, H, W, out_channels]`, float32 whatever `compute_dtype` is."""
    return self.conv_out(self.hidden(z1))

  def reference(self, z1: tf.Tensor) -> tf.Tensor:
    return self.conv_out.reference(self.hidden_reference(z1))

  def initialize(self, z1: tf.Tensor) -> tf.Tensor:
    """Data-dependent init of the hidden ActNorms on this batch; returns f(z1)."""
    return self.conv_out(self._hidden_reference(z1, init=True))
