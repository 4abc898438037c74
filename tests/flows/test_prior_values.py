"""The split and top priors by value against numpy, on shapes with N, H, W, C all different:
the Gaussian each standardises by, its log-dets per example, and the class-conditional top prior
(learned edge-bias mean, per-class linear map scaled by exp(3 * logs))."""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2 import flows as gb
from tests import helpers

N, H, W, C = 2, 3, 5, 6


def _z(seed, shape=(N, H, W, C)):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _check_affine_prior(layer, z, mean_and_logs, **kwargs):
  """eps = (z - mean) exp(-logs) and back, log-dets -/+ sum(logs) per example; `mean_and_logs`
  gives them (numpy) for an input (a split prior's depend on the first half of it)."""
  mean, logs = mean_and_logs(z)
  eps = layer.inverse(z, **kwargs).numpy()
  np.testing.assert_allclose(eps, (z - mean) * np.exp(-logs), rtol=1e-4, atol=1e-4)
  expected = np.broadcast_to(logs, z.shape).sum(axis=(1, 2, 3))
  ildj = layer.inverse_log_det_jacobian(z, **kwargs).numpy()
  assert ildj.shape == (N,)
  np.testing.assert_allclose(ildj, -expected, rtol=1e-4, atol=1e-4)
  e = _z(9, z.shape)
  mean, logs = mean_and_logs(e)
  expected = np.broadcast_to(logs, z.shape).sum(axis=(1, 2, 3))
  np.testing.assert_allclose(
    layer.forward(e, **kwargs).numpy(), mean + np.exp(logs) * e, rtol=1e-4, atol=1e-4
  )
  fldj = layer.forward_log_det_jacobian(e, **kwargs).numpy()
  assert fldj.shape == (N,)
  np.testing.assert_allclose(fldj, expected, rtol=1e-4, atol=1e-4)


def _border_conv(height, width, kernel, bias, logs):
  """Glow's zero conv of an image with no channels, by definition: only the border marker (1 on
  the zero padding) meets the kernel; then (+ bias) * exp(3 logs). `[1, height, width, C_out]`."""
  marker = np.pad(np.zeros((height, width)), 1, constant_values=1.0)
  out = np.zeros((height, width, kernel.shape[-1]))
  for dy in range(3):
    for dx in range(3):
      out += marker[dy : dy + height, dx : dx + width, None] * kernel[dy, dx, 0]
  return ((out + bias) * np.exp(3.0 * logs))[None]


def test_split_prior_standardises_the_second_half_by_the_first():
  layer = gb.SplitPrior(C)
  helpers.perturb(layer, scale=0.2)

  def mean_and_logs(z):
    h = layer.network.reference(z[..., : C // 2]).numpy()  # the unfolded conv of the first half
    mean, logs = h[..., : C // 2], h[..., C // 2 :]
    assert np.ptp(logs.sum(axis=(1, 2, 3))) > 1e-3  # per-example log-dets differ
    zeros = np.zeros_like(mean)  # the first half passes unchanged
    return np.concatenate([zeros, mean], -1), np.concatenate([zeros, logs], -1)

  _check_affine_prior(layer, _z(0), mean_and_logs)


@pytest.mark.parametrize("learntop", [True, False])
def test_class_conditional_top_prior_is_its_formula(learntop):
  layer = gb.TopPrior((H, W, C), learntop=learntop, n_classes=3)
  helpers.perturb(layer, scale=0.3)
  labels = np.array([2, 0])
  h = np.zeros((1, H, W, 2 * C))
  if learntop:
    conv = layer.network
    h = h + _border_conv(H, W, conv.kernel.numpy(), conv.bias.numpy(), conv.logs.numpy())
  onehot = np.eye(3)[labels]
  by_class = (onehot @ layer.class_kernel.numpy() + layer.class_bias.numpy()) * np.exp(
    3.0 * layer.class_logs.numpy()
  )
  h = h + by_class[:, None, None, :]
  _check_affine_prior(layer, _z(1), lambda _: (h[..., :C], h[..., C:]), labels=tf.constant(labels))


def test_unconditional_top_prior():
  z = _z(2)
  plain = gb.TopPrior((H, W, C), learntop=False, n_classes=0)
  _check_affine_prior(plain, z, lambda _: (np.zeros_like(z), np.zeros_like(z)))
  learned = gb.TopPrior((H, W, C), learntop=True, n_classes=0)
  helpers.perturb(learned, scale=0.3)
  conv = learned.network
  h = _border_conv(H, W, conv.kernel.numpy(), conv.bias.numpy(), conv.logs.numpy())
  _check_affine_prior(learned, z, lambda _: (h[..., :C], h[..., C:]))


@pytest.mark.parametrize("kind", ["split", "top"])
def test_mixed_precision_reaches_the_prior_conv(kind):
  def make(precision):
    if kind == "split":
      return gb.SplitPrior(C, precision=precision)
    return gb.TopPrior((H, W, C), learntop=True, n_classes=0, precision=precision)

  layers = [make(p) for p in ("float32", "mixed_bfloat16")]
  for layer in layers:
    helpers.perturb(layer, scale=0.1)
  assert layers[1].network.compute_dtype == tf.bfloat16
  z1 = _z(4)[..., : C // 2]
  # mean and logs in float32 and from the bfloat16 conv: apart by bfloat16 rounding only.
  h32, h16 = (
    np.concatenate(
      [t.numpy() for t in (layer.mean_and_logs(z1) if kind == "split" else layer.mean_and_logs())],
      -1,
    )
    for layer in layers
  )
  assert h16.dtype == np.float32
  assert 1e-5 < np.abs(h16 - h32).max() < 0.02 * np.abs(h32).max()


def test_split_prior_needs_an_even_channel_count():
  with pytest.raises(ValueError, match="SplitPrior needs an even number of channels, got 3"):
    gb.SplitPrior(3)


def test_plain_top_prior_is_the_identity_for_any_batch_size():
  # N(0, 1) without learntop or classes: mean 0 and logs 0 broadcast to every batch size.
  layer = gb.TopPrior((H, W, C), learntop=False, n_classes=0)
  for n in (1, 3):
    z = _z(5, (n, H, W, C))
    np.testing.assert_array_equal(layer.inverse(z).numpy(), z)
    np.testing.assert_array_equal(layer.forward(tf.constant(z)).numpy(), z)
    np.testing.assert_array_equal(
      layer.inverse_log_det_jacobian(tf.constant(z)).numpy(), np.zeros(n)
    )


def test_log_dets_of_one_tensor_under_two_labelings_are_not_shared():
  # TFP's cache keys a pass by its keyword arguments too: the same z under other labels is
  # another pass, never the cached answer of the first.
  layer = gb.TopPrior((H, W, C), learntop=False, n_classes=3)
  helpers.perturb(layer, scale=0.3)
  z = tf.constant(_z(6))
  for labels in ([0, 1], [2, 2]):
    onehot = np.eye(3)[labels]
    h = (onehot @ layer.class_kernel.numpy() + layer.class_bias.numpy()) * np.exp(
      3.0 * layer.class_logs.numpy()
    )
    expected = -H * W * h[:, C:].sum(-1)
    ildj = layer.inverse_log_det_jacobian(z, labels=tf.constant(labels))
    np.testing.assert_allclose(ildj.numpy(), expected, rtol=1e-4, atol=1e-3)
    eps = layer.inverse(z, labels=tf.constant(labels))
    fldj = layer.forward_log_det_jacobian(eps, labels=tf.constant(labels))
    np.testing.assert_allclose(fldj.numpy(), -expected, rtol=1e-4, atol=1e-3)
    same = layer.forward_log_det_jacobian(z, labels=tf.constant(labels))  # z, not eps
    np.testing.assert_allclose(same.numpy(), -expected, rtol=1e-4, atol=1e-3)
