"""Invertible 1x1 convolution (Glow, section 3.2), in two parameterisations.

Data -> latent, at every pixel:  z = x W   (W is C x C; a 1x1 conv with kernel W)
log|det dz/dx| = H * W_img * log|det W|.

- `InvertibleConv1x1` learns W directly, initialised as a random rotation (log|det W| = 0).
  log|det W| is computed in float64: in float32 the LU behind slogdet loses the small changes of a
  near-orthogonal W that training makes.
- `LUConv1x1` learns W = P L (U + diag(sign(s) * exp(log_s))) with P and sign(s) fixed, L unit lower
  triangular and U strictly upper triangular, so log|det W| = sum(log_s): exact and O(C) in float32,
  and the inverse is two triangular solves.
"""

import numpy as np
import scipy.linalg
import tensorflow as tf

from glow_tf2.flows import base


def random_rotation(channels: int, rng: np.random.Generator) -> np.ndarray:
  """A random orthogonal C x C matrix (QR of a Gaussian matrix), float32."""
  q, _ = np.linalg.qr(rng.standard_normal((channels, channels)))
  return q.astype(np.float32)


def pixelwise_matmul(x: tf.Tensor, w: tf.Tensor, bias=None) -> tf.Tensor:
  """`[N, H, W, C] x [C, C]` (+ bias `[1, C]`) at every pixel; a flat matmul beats a 1x1 conv2d."""
  shape = tf.shape(x)
  flat = tf.matmul(tf.reshape(x, [-1, shape[-1]]), w)
  if bias is not None:
    flat = tf.nn.bias_add(flat, tf.reshape(bias, [-1]))
  return tf.reshape(flat, shape)


class Conv1x1Base(base.GlowBijector):
  """z = x W at every pixel, given `matrix`, `inverse_matrix` and `log_abs_det_matrix`.

  The base of both parameterisations; `flow_step.FlowStep` folds its ActNorm into the matrix of
  any subclass.
  """

  def matrix(self) -> tf.Tensor:
    raise NotImplementedError

  def inverse_matrix(self) -> tf.Tensor:
    raise NotImplementedError

  def log_abs_det_matrix(self) -> tf.Tensor:
    raise NotImplementedError

  def _inverse_and_log_det(self, x):
    ildj = base.spatial_size(x) * self.log_abs_det_matrix()
    return pixelwise_matmul(x, self.matrix()), tf.fill(tf.shape(x)[:1], ildj)

  def _forward_and_log_det(self, z):
    fldj = -base.spatial_size(z) * self.log_abs_det_matrix()
    return pixelwise_matmul(z, self.inverse_matrix()), tf.fill(tf.shape(z)[:1], fldj)


class InvertibleConv1x1(Conv1x1Base):
  """1x1 convolution with a learned, unconstrained C x C matrix."""

  def __init__(self, channels: int, rng: np.random.Generator, name: str = "conv1x1"):
    parameters = dict(locals())
    with tf.name_scope(name):
      self.kernel = tf.Variable(random_rotation(channels, rng), name="kernel")
    super().__init__(parameters=parameters, name=name)

  def matrix(self) -> tf.Tensor:
    return self.kernel

  def inverse_matrix(self) -> tf.Tensor:
    return tf.linalg.inv(self.kernel)

  def log_abs_det_matrix(self) -> tf.Tensor:
    _, log_abs_det = tf.linalg.slogdet(tf.cast(self.kernel, tf.float64))
    return tf.cast(log_abs_det, self.kernel.dtype)


class LUConv1x1(Conv1x1Base):
  """1x1 convolution with W = P L (U + diag(sign(s) exp(log_s)))."""

  def __init__(self, channels: int, rng: np.random.Generator, name: str = "lu_conv1x1"):
    parameters = dict(locals())
    p, lower, upper = scipy.linalg.lu(random_rotation(channels, rng).astype(np.float64))
    s = np.diag(upper)
    with tf.name_scope(name):
      self.p = tf.Variable(p.astype(np.float32), trainable=False, name="p")
      self.sign_s = tf.Variable(np.sign(s).astype(np.float32), trainable=False, name="sign_s")
      self.lower = tf.Variable(np.tril(lower, -1).astype(np.float32), name="lower")
      self.upper = tf.Variable(np.triu(upper, 1).astype(np.float32), name="upper")
      self.log_s = tf.Variable(np.log(np.abs(s)).astype(np.float32), name="log_s")
    self.channels = channels
    super().__init__(parameters=parameters, name=name)

  def _factors(self):
    """(L, U') with the masks applied, so entries outside the triangles never matter."""
    eye = tf.eye(self.channels, dtype=self.lower.dtype)
    lower = tf.linalg.band_part(self.lower, -1, 0) * (1.0 - eye) + eye
    upper = tf.linalg.band_part(self.upper, 0, -1) * (1.0 - eye) + tf.linalg.diag(
      self.sign_s * tf.exp(self.log_s)
    )
    return lower, upper

  def matrix(self) -> tf.Tensor:
    lower, upper = self._factors()
    return self.p @ lower @ upper

  def inverse_matrix(self) -> tf.Tensor:
    lower, upper = self._factors()
    eye = tf.eye(self.channels, dtype=lower.dtype)
    upper_inv = tf.linalg.triangular_solve(upper, eye, lower=False)
    lower_inv = tf.linalg.triangular_solve(lower, eye, lower=True)
    return upper_inv @ lower_inv @ tf.transpose(self.p)

  def log_abs_det_matrix(self) -> tf.Tensor:
    return tf.reduce_sum(self.log_s)
