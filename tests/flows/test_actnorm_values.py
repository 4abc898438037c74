"""ActNorm by value: both maps, both log-dets and the data-dependent init against numpy.

Shapes have N, H, W and C all different, so a log-det of the wrong shape or a statistic over the
wrong axes cannot pass by coincidence.
"""

import numpy as np
import tensorflow as tf

from glow_tf2 import flows as gb

N, H, W, C = 2, 3, 5, 6


def _x(seed=0, shape=(N, H, W, C)):
  return np.random.default_rng(seed).normal(0.5, 2.0, shape).astype(np.float32)


def test_actnorm_maps_and_log_dets_are_glows_formulas():
  rng = np.random.default_rng(1)
  bias = rng.normal(size=C).astype(np.float32)
  logs = rng.normal(0, 0.3, size=C).astype(np.float32)
  layer = gb.ActNorm(C)
  layer.bias.assign(bias)
  layer.logs.assign(logs)
  s = 3.0 * logs  # s is stored divided by logscale_factor = 3
  x = _x()
  np.testing.assert_allclose(layer.inverse(x).numpy(), (x + bias) * np.exp(s), rtol=1e-5)
  ildj = layer.inverse_log_det_jacobian(x).numpy()
  assert ildj.shape == (N,)
  np.testing.assert_allclose(ildj, np.full(N, H * W * s.sum()), rtol=1e-5)
  z = _x(1)
  np.testing.assert_allclose(layer.forward(z).numpy(), z * np.exp(-s) - bias, rtol=1e-5, atol=1e-6)
  fldj = layer.forward_log_det_jacobian(z).numpy()
  assert fldj.shape == (N,)
  np.testing.assert_allclose(fldj, np.full(N, -H * W * s.sum()), rtol=1e-5)


def test_actnorm_logscale_factor_is_the_stored_scale_multiplier():
  layer = gb.ActNorm(C, logscale_factor=1.5)
  layer.logs.assign(np.linspace(-0.5, 0.5, C).astype(np.float32))
  np.testing.assert_allclose(layer.log_scale.numpy(), 1.5 * np.linspace(-0.5, 0.5, C), rtol=1e-6)


def test_actnorm_initialize_sets_glows_statistics():
  x = _x(2)
  x[..., 4] = 0.25  # a channel that is constant over the batch: std 0
  layer = gb.ActNorm(C)
  out = layer.initialize(tf.constant(x)).numpy()
  x64 = x.astype(np.float64)
  mean = x64.mean(axis=(0, 1, 2))
  std = x64.std(axis=(0, 1, 2))
  np.testing.assert_allclose(layer.bias.numpy(), -mean, rtol=1e-5, atol=1e-6)
  expected_logs = np.log(1.0 / (std + 1e-6)) / 3.0
  np.testing.assert_allclose(layer.logs.numpy(), expected_logs, rtol=1e-4, atol=1e-5)
  # The constant channel gets the finite scale 1 / 1e-6, not a division by zero.
  np.testing.assert_allclose(layer.logs.numpy()[4], np.log(1e6) / 3.0, rtol=1e-5)
  np.testing.assert_allclose(out, (x64 - mean) / (std + 1e-6), rtol=1e-4, atol=1e-4)
