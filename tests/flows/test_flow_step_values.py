"""Channel permutations and the step of flow by value: which channel goes where, and a step as
the composition actnorm -> permutation -> coupling of its own layers, for every permutation."""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2 import flows as gb
from tests import helpers

N, H, W, C = 2, 3, 5, 6


def _x(seed):
  return np.random.default_rng(seed).normal(size=(N, H, W, C)).astype(np.float32)


@pytest.mark.parametrize(
  "layer,permutation",
  [
    (lambda: gb.ChannelPermutation.reverse(C), [5, 4, 3, 2, 1, 0]),
    (lambda: gb.ChannelPermutation.shuffle(C, seed=3), np.random.default_rng(3).permutation(C)),
    (lambda: gb.ChannelPermutation([1, 3, 5, 0, 2, 4]), [1, 3, 5, 0, 2, 4]),
  ],
  ids=["reverse", "shuffle", "given"],
)
def test_permutation_moves_channel_p_i_to_i(layer, permutation):
  layer = layer()
  p = np.asarray(permutation)
  np.testing.assert_array_equal(layer.permutation.numpy(), p)
  x = _x(0)
  z = layer.inverse(x).numpy()
  np.testing.assert_array_equal(z, x[..., p])
  back = np.empty_like(z)
  back[..., p] = z
  np.testing.assert_array_equal(layer.forward(tf.constant(z)).numpy(), back)
  for log_det in (layer.inverse_log_det_jacobian(x), layer.forward_log_det_jacobian(z)):
    assert log_det.shape == (N,)
    np.testing.assert_array_equal(log_det.numpy(), np.zeros(N))


@pytest.mark.parametrize("permutation", ["reverse", "shuffle", "conv", "lu"])
def test_flow_step_is_actnorm_then_permutation_then_coupling(permutation):
  step = gb.FlowStep(C, 8, permutation, "affine", np.random.default_rng(1))
  helpers.perturb(step, scale=0.2)
  layers = (step.actnorm, step.permutation, step.coupling)
  x = _x(1)
  h, ildj = x, np.zeros(N)
  for layer in layers:
    ildj = ildj + layer.inverse_log_det_jacobian(h).numpy()
    h = layer.inverse(h).numpy()
  np.testing.assert_allclose(step.inverse(x).numpy(), h, rtol=1e-4, atol=1e-4)
  got = step.inverse_log_det_jacobian(x).numpy()
  assert got.shape == (N,)
  np.testing.assert_allclose(got, ildj, rtol=1e-4, atol=1e-3)
  z = _x(2)
  h, fldj = z, np.zeros(N)
  for layer in reversed(layers):
    fldj = fldj + layer.forward_log_det_jacobian(h).numpy()
    h = layer.forward(h).numpy()
  np.testing.assert_allclose(step.forward(z).numpy(), h, rtol=1e-4, atol=1e-4)
  got = step.forward_log_det_jacobian(z).numpy()
  assert got.shape == (N,)
  np.testing.assert_allclose(got, fldj, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("permutation", ["shuffle", "lu"])
def test_flow_step_initialize_normalises_and_returns_the_encoding(permutation):
  step = gb.FlowStep(C, 8, permutation, "additive", np.random.default_rng(2))
  x = tf.constant(_x(3) * 3.0 + 1.0)
  out = step.initialize(x).numpy()
  normalised = step.actnorm.normalize(x).numpy()
  np.testing.assert_allclose(normalised.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(normalised.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
  np.testing.assert_allclose(out, step.inverse(tf.identity(x)).numpy(), rtol=1e-5, atol=1e-5)


def test_flow_step_permutation_kinds():
  rng = np.random.default_rng(0)
  assert isinstance(gb.FlowStep(C, 8, "conv", "affine", rng).permutation, gb.InvertibleConv1x1)
  assert isinstance(gb.FlowStep(C, 8, "lu", "affine", rng).permutation, gb.LUConv1x1)
  reverse = gb.FlowStep(C, 8, "reverse", "affine", rng).permutation
  np.testing.assert_array_equal(reverse.permutation.numpy(), np.arange(C)[::-1])
  a = gb.FlowStep(C, 8, "shuffle", "affine", np.random.default_rng(5)).permutation.permutation
  b = gb.FlowStep(C, 8, "shuffle", "affine", np.random.default_rng(5)).permutation.permutation
  np.testing.assert_array_equal(a.numpy(), b.numpy())  # drawn from the step's rng
  with pytest.raises(ValueError, match="permutation must be one of"):
    gb.FlowStep(C, 8, "spin", "affine", rng)


def test_mixed_precision_reaches_the_steps_coupling():
  steps = [
    gb.FlowStep(C, 8, "lu", "affine", np.random.default_rng(0), precision=p)
    for p in ("float32", "mixed_bfloat16")
  ]
  for step in steps:
    helpers.perturb(step, scale=0.2)
  assert steps[1].coupling.network.compute_dtype == tf.bfloat16
  x = _x(4)
  z32, z16 = (step.inverse(tf.identity(x)).numpy() for step in steps)
  assert 1e-4 < np.abs(z16 - z32).max() < 0.05


def test_permutation_keeps_the_dtype_of_its_input_in_the_log_det():
  layer = gb.ChannelPermutation.reverse(C)
  x = _x(5).astype(np.float64)
  assert layer.inverse(x).dtype == tf.float64
  assert layer.inverse_log_det_jacobian(x).dtype == tf.float64
  assert layer.forward_log_det_jacobian(tf.identity(x)).dtype == tf.float64
