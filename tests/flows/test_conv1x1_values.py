"""The invertible 1x1 convolutions by value, against numpy: z = x W at every pixel, W = P L U for
the LU form, the masks of its triangles, and its initial rotation."""

import numpy as np
import scipy.linalg

from glow_tf2 import flows as gb
from glow_tf2.flows import conv1x1

N, H, W, C = 2, 3, 5, 6  # all different: a reshape over the wrong axis cannot pass


def _x(seed):
  return np.random.default_rng(seed).normal(size=(N, H, W, C)).astype(np.float32)


def _check_pixelwise_map(layer, w):
  """The layer is x -> x w at every pixel, with log-dets H W log|det w|, against numpy."""
  x = _x(0)
  expected = np.einsum("nhwc,cd->nhwd", x.astype(np.float64), w)
  np.testing.assert_allclose(layer.inverse(x).numpy(), expected, rtol=1e-4, atol=1e-5)
  log_det = np.linalg.slogdet(w)[1]
  ildj = layer.inverse_log_det_jacobian(x).numpy()
  assert ildj.shape == (N,)
  np.testing.assert_allclose(ildj, np.full(N, H * W * log_det), rtol=1e-4, atol=1e-4)
  z = _x(1)
  expected = np.einsum("nhwc,cd->nhwd", z.astype(np.float64), np.linalg.inv(w))
  np.testing.assert_allclose(layer.forward(z).numpy(), expected, rtol=1e-4, atol=1e-4)
  fldj = layer.forward_log_det_jacobian(z).numpy()
  assert fldj.shape == (N,)
  np.testing.assert_allclose(fldj, np.full(N, -H * W * log_det), rtol=1e-4, atol=1e-4)


def test_random_rotation_is_the_q_of_a_gaussian_matrix():
  q = conv1x1.random_rotation(C, np.random.default_rng(3))
  assert q.dtype == np.float32 and q.shape == (C, C)
  expected = np.linalg.qr(np.random.default_rng(3).standard_normal((C, C)))[0]
  np.testing.assert_allclose(q, expected, rtol=1e-6, atol=1e-6)


def test_invertible_conv1x1_is_x_times_its_kernel():
  layer = gb.InvertibleConv1x1(C, np.random.default_rng(0))
  w = np.random.default_rng(5).normal(size=(C, C)) + 2.0 * np.eye(C)  # log|det| far from 0
  layer.kernel.assign(w.astype(np.float32))
  _check_pixelwise_map(layer, w.astype(np.float32).astype(np.float64))


def test_lu_conv1x1_is_p_l_u_whatever_lies_outside_the_triangles():
  layer = gb.LUConv1x1(C, np.random.default_rng(0))
  rng = np.random.default_rng(6)
  # Full random matrices: only the strict triangles may be read.
  lower = rng.normal(0, 0.5, (C, C)).astype(np.float32)
  upper = rng.normal(0, 0.5, (C, C)).astype(np.float32)
  log_s = rng.normal(0, 0.5, C).astype(np.float32)
  layer.lower.assign(lower)
  layer.upper.assign(upper)
  layer.log_s.assign(log_s)
  p = layer.p.numpy().astype(np.float64)
  sign_s = layer.sign_s.numpy().astype(np.float64)
  w = (
    p
    @ (np.tril(lower, -1) + np.eye(C))
    @ (np.triu(upper, 1) + np.diag(sign_s * np.exp(log_s.astype(np.float64))))
  )
  np.testing.assert_allclose(layer.matrix().numpy(), w, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(layer.inverse_matrix().numpy(), np.linalg.inv(w), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(layer.log_abs_det_matrix().numpy(), log_s.sum(), rtol=1e-5)
  _check_pixelwise_map(layer, w)


def test_lu_conv1x1_starts_as_scipys_lu_of_the_rotation():
  layer = gb.LUConv1x1(C, np.random.default_rng(4))
  rotation = conv1x1.random_rotation(C, np.random.default_rng(4)).astype(np.float64)
  p, lower, upper = scipy.linalg.lu(rotation)
  np.testing.assert_array_equal(layer.p.numpy(), p)
  # The variables hold exactly the strict triangles (the diagonals live in sign_s and log_s).
  np.testing.assert_allclose(layer.lower.numpy(), np.tril(lower, -1), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(layer.upper.numpy(), np.triu(upper, 1), rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(layer.sign_s.numpy(), np.sign(np.diag(upper)))
  np.testing.assert_allclose(layer.log_s.numpy(), np.log(np.abs(np.diag(upper))), rtol=1e-5)
  np.testing.assert_allclose(layer.matrix().numpy(), rotation, atol=1e-5)
