"""The couplings by value on a shape with N, H, W, C all different: which channels pass, the
additive update, the shapes of the log-dets, and the data-dependent init's returned batch."""

import numpy as np
import tensorflow as tf

from glow_tf2 import flows as gb
from glow_tf2.flows import nets
from tests import helpers

N, H, W, C = 2, 3, 5, 6
HALF = C // 2


def _x(seed):
  return tf.constant(np.random.default_rng(seed).normal(size=(N, H, W, C)).astype(np.float32))


def _coupling(kind):
  layer = gb.Coupling(C, 8, kind, np.random.default_rng(0))
  helpers.perturb(layer, scale=0.2)
  return layer


def test_additive_coupling_adds_the_network_output_to_the_second_half():
  layer = _coupling("additive")
  x = _x(0).numpy()
  h = layer.network.reference(x[..., :HALF]).numpy()  # the unfolded network, step by step
  assert h.shape == (N, H, W, C - HALF) and np.abs(h).max() > 0.05
  z = layer.inverse(x).numpy()
  np.testing.assert_array_equal(z[..., :HALF], x[..., :HALF])
  np.testing.assert_allclose(z[..., HALF:], x[..., HALF:] + h, rtol=1e-4, atol=1e-4)
  x_back = layer.forward(tf.constant(z)).numpy()
  np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)
  for log_det in (layer.inverse_log_det_jacobian(x), layer.forward_log_det_jacobian(z)):
    np.testing.assert_array_equal(log_det.numpy(), np.zeros(N))


def test_affine_coupling_log_dets_are_per_example_sums():
  layer = _coupling("affine")
  x = _x(1).numpy()
  h = layer.network.reference(x[..., :HALF]).numpy()
  # log sigmoid of the softly floored logit -10 + softplus(r + 2 + 10) (coupling's docstring).
  logit = -10.0 + np.logaddexp(0.0, h[..., HALF:].astype(np.float64) + 12.0)
  log_scale = -np.logaddexp(0.0, -logit)
  expected = log_scale.sum(axis=(1, 2, 3))
  assert np.ptp(expected) > 1e-3  # the examples differ, so a sum over the batch would show
  ildj = layer.inverse_log_det_jacobian(x).numpy()
  assert ildj.shape == (N,)
  np.testing.assert_allclose(ildj, expected, rtol=1e-4, atol=1e-4)
  z = layer.inverse(tf.identity(x))
  fldj = layer.forward_log_det_jacobian(z).numpy()
  assert fldj.shape == (N,)
  np.testing.assert_allclose(fldj, -expected, rtol=1e-4, atol=1e-4)


def test_initialize_returns_the_encoding_with_the_initialised_network():
  layer = gb.Coupling(C, 8, "affine", np.random.default_rng(0))
  # A non-zero output conv, so the returned batch depends on the network.
  layer.network.conv_out.bias.assign(np.linspace(-0.5, 0.5, 2 * (C - HALF)).astype(np.float32))
  layer.network.conv_out.kernel.assign(
    np.random.default_rng(2).normal(0, 0.05, layer.network.conv_out.kernel.shape).astype(np.float32)
  )
  x = _x(2)
  out = layer.initialize(x).numpy()
  np.testing.assert_allclose(out, layer.inverse(tf.identity(x)).numpy(), rtol=1e-5, atol=1e-5)
  # The first ActNorm of the network now normalises the conv of x1 on this batch.
  pre = layer.network.norm_in.normalize(layer.network.conv_in(x[..., :HALF])).numpy()
  np.testing.assert_allclose(pre.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(pre.std(axis=(0, 1, 2)), 1.0, atol=1e-3)


def test_mixed_precision_reaches_the_coupling_network():
  # The same weights in float32 and with a bfloat16 network: the encodings differ by bfloat16
  # rounding (8 significant bits) of the network output only.
  layers = [
    gb.Coupling(C, 8, "affine", np.random.default_rng(0), precision=p)
    for p in ("float32", "mixed_bfloat16")
  ]
  for layer in layers:
    helpers.perturb(layer, scale=0.2)
  assert layers[1].network.compute_dtype == tf.bfloat16
  assert layers[1].network.conv_out.compute_dtype == tf.bfloat16
  x = _x(3)
  z32, z16 = (layer.inverse(tf.identity(x)).numpy() for layer in layers)
  assert z16.dtype == np.float32
  assert 1e-4 < np.abs(z16 - z32).max() < 0.05


def test_a_pass_answers_both_log_dets_without_running_the_network_again(monkeypatch):
  # base.GlowBijector stores a pass's log-det (and its negative for the other direction) next to
  # its value, so TFP's log-det requests after a pass are cache hits, not second passes.
  layer = _coupling("affine")
  calls = []
  original = nets.CouplingNetwork.__call__
  monkeypatch.setattr(
    nets.CouplingNetwork, "__call__", lambda self, h: calls.append(1) or original(self, h)
  )
  x = _x(4)
  z = layer.inverse(x)
  ildj = layer.inverse_log_det_jacobian(x)
  fldj = layer.forward_log_det_jacobian(z)
  assert len(calls) == 1
  np.testing.assert_allclose(fldj.numpy(), -ildj.numpy(), rtol=1e-6)
  e = _x(5)
  x_e = layer.forward(e)
  fldj = layer.forward_log_det_jacobian(e)
  ildj = layer.inverse_log_det_jacobian(x_e)
  assert len(calls) == 2
  np.testing.assert_allclose(ildj.numpy(), -fldj.numpy(), rtol=1e-6)
  # The other direction's log-det first: TFP writes the negated "ildj" into the shared entry only
  # when it answers a same-direction request, so this one must come from the pass itself.
  e = _x(6)
  x_e = layer.forward(e)
  ildj = layer.inverse_log_det_jacobian(x_e)
  assert len(calls) == 3
  _, fldj_direct = layer._forward_and_log_det(e)
  np.testing.assert_allclose(ildj.numpy(), -fldj_direct.numpy(), rtol=1e-6)
