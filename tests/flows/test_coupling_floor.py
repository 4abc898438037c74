"""The affine coupling's soft floor on the scale logit, checked by value where it matters.

The coupling computes u = r + 2 from the network's raw scale output r and uses
u' = MIN_LOGIT + softplus(u - MIN_LOGIT) (MIN_LOGIT = -10) as the logit of its scale
sigmoid(u'). The tests set the network's zero-initialised output conv to a constant output
(kernel 0, bias b: h = b at every pixel) or perturb it around a very negative bias, and compare
both directions and both log-dets with the same formula computed here in float64 numpy.
"""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2 import flows as gb
from glow_tf2.flows import coupling as coupling_lib
from tests import helpers

CHANNELS = 4
HALF = CHANNELS // 2
SHAPE = (3, 4, 5, CHANNELS)


def floored_log_scale(raw: np.ndarray) -> np.ndarray:
  """log sigmoid(-10 + softplus(r + 2 + 10)) in float64, written out from the docstring."""
  u = np.asarray(raw, np.float64) + 2.0
  floored = -10.0 + np.logaddexp(0.0, u + 10.0)
  return -np.logaddexp(0.0, -floored)


def constant_output_coupling(shift, raw_scale) -> gb.Coupling:
  """An affine coupling whose network outputs h = [shift, raw_scale] at every pixel."""
  layer = gb.Coupling(CHANNELS, 8, "affine", np.random.default_rng(0))
  # The output conv is (conv(x, k) + b) * exp(3 logs) with k = 0 and logs = 0: h = b exactly.
  bias = np.concatenate([shift, raw_scale]).astype(np.float32)
  layer.network.conv_out.bias.assign(bias)
  return layer


def data(seed: int) -> tf.Tensor:
  return tf.constant(np.random.default_rng(seed).normal(0, 1, SHAPE).astype(np.float32))


def test_the_floor_constant_is_the_documented_one():
  assert coupling_lib.MIN_LOGIT == -10.0


@pytest.mark.parametrize(
  "raw_scale",
  [
    (-200.0, -60.0),  # deep below the floor: the scale stays at sigmoid(-10), not sigmoid(-198)
    (-14.0, -12.0),  # at the knee, u = r + 2 in (-12, -10): the floor bends the logit up
    (-8.0, 3.0),  # u = -6 is lifted by 0.018; u = 5 is unchanged to within 5e-5
  ],
)
def test_encode_and_decode_use_the_floored_scale(raw_scale):
  shift = np.array([0.3, -0.7])
  layer = constant_output_coupling(shift, np.array(raw_scale))
  log_scale = floored_log_scale(raw_scale)  # [HALF]
  n, h, w, _ = SHAPE
  x = data(0)
  x1, x2 = x.numpy()[..., :HALF], x.numpy()[..., HALF:].astype(np.float64)

  z, ildj = layer._inverse_and_log_det(x)
  expected_z2 = (x2 + shift) * np.exp(log_scale)
  np.testing.assert_array_equal(z.numpy()[..., :HALF], x1)
  np.testing.assert_allclose(z.numpy()[..., HALF:], expected_z2, rtol=1e-5, atol=1e-12)
  expected_ildj = h * w * log_scale.sum()
  np.testing.assert_allclose(ildj.numpy(), np.full(n, expected_ildj), rtol=1e-6)
  # The public TFP methods give the same log-det, in both directions.
  np.testing.assert_allclose(
    layer.inverse_log_det_jacobian(tf.identity(x)).numpy(), expected_ildj, rtol=1e-6
  )

  z_latent = data(1)
  x_back, fldj = layer._forward_and_log_det(z_latent)
  expected_x2 = z_latent.numpy()[..., HALF:] * np.exp(-log_scale) - shift
  assert np.all(np.isfinite(x_back.numpy()))
  np.testing.assert_allclose(x_back.numpy()[..., HALF:], expected_x2, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(fldj.numpy(), np.full(n, -expected_ildj), rtol=1e-6)
  np.testing.assert_allclose(
    layer.forward_log_det_jacobian(tf.identity(z_latent)).numpy(), -expected_ildj, rtol=1e-6
  )


def test_deep_below_the_floor_the_scale_is_sigmoid_of_minus_ten():
  layer = constant_output_coupling(np.zeros(HALF), np.array([-500.0, -90.0]))
  x = data(2)
  _, ildj = layer._inverse_and_log_det(x)
  per_dim = ildj.numpy() / (SHAPE[1] * SHAPE[2] * HALF)
  # log sigmoid(-10) = -10 - log1p(e^-10) = -10.0000454; without a floor it would be ~ -498, -88.
  np.testing.assert_allclose(per_dim, -10.0 - np.log1p(np.exp(-10.0)), rtol=1e-6)
  # Decoding amplifies by at most 1 / sigmoid(-10) = 1 + e^10 per coupling, and stays finite.
  z = tf.fill(SHAPE, 3.0)
  x_back = layer.forward(z).numpy()[..., HALF:]
  np.testing.assert_allclose(x_back, 3.0 * (1.0 + np.exp(10.0)), rtol=1e-5)


def test_round_trip_is_exact_at_very_negative_outputs():
  layer = constant_output_coupling(np.array([0.1, -0.2]), np.array([-300.0, -11.0]))
  x = data(3)
  z = layer.inverse(x)
  # tf.identity: TFP's cache would otherwise hand x back and the round trip would compute nothing.
  np.testing.assert_allclose(layer.forward(tf.identity(z)).numpy(), x.numpy(), rtol=0, atol=2e-4)
  # The scale is 4.5e-5, so z2 ~ 1e-5: check the latent side relatively.
  z2 = tf.constant(np.random.default_rng(4).normal(0, 1e-4, SHAPE).astype(np.float32))
  x2 = layer.forward(z2)
  np.testing.assert_allclose(
    layer.inverse(tf.identity(x2)).numpy(), z2.numpy(), rtol=1e-4, atol=1e-9
  )


@pytest.mark.parametrize("bias", [-200.0, -12.0])
def test_log_det_matches_the_jacobian_where_the_floor_acts(bias):
  # A network output that varies with x1, centred at `bias`: r + 2 spans the knee of the floor
  # (bias -12) or lies deep below it (bias -200), where the map's scale depends on x1 only
  # through the softplus tail.
  layer = gb.Coupling(CHANNELS, 8, "affine", np.random.default_rng(5))
  helpers.perturb(layer, scale=0.3, seed=5)
  conv_out = layer.network.conv_out
  conv_out.bias.assign(np.array([0.0, 0.0, bias, bias], np.float32))
  x = data(6)
  h = layer.network(x[..., :HALF]).numpy()
  raw = h[..., HALF:]
  assert raw.std() > 0.05, "the network output does not vary with x1"

  z, ildj = layer._inverse_and_log_det(x)
  expected = floored_log_scale(raw).sum(axis=(1, 2, 3))
  np.testing.assert_allclose(ildj.numpy(), expected, rtol=1e-5)
  assert np.all(np.isfinite(ildj.numpy()))
  numerical = helpers.jacobian_log_det(lambda t: layer._inverse_and_log_det(t)[0], x)
  np.testing.assert_allclose(ildj.numpy(), numerical, rtol=1e-4, atol=1e-2)

  fldj = layer.forward_log_det_jacobian(tf.identity(z)).numpy()
  np.testing.assert_allclose(fldj, -ildj.numpy(), rtol=1e-6)
  if bias > -100:  # deep below, a latent -> data Jacobian entry is e^10: float32 slogdet is poor
    numerical = helpers.jacobian_log_det(lambda t: layer._forward_and_log_det(t)[0], z)
    np.testing.assert_allclose(fldj, numerical, rtol=1e-4, atol=1e-2)


def test_gradients_stay_finite_below_the_floor():
  layer = constant_output_coupling(np.zeros(HALF), np.array([-400.0, -40.0]))
  helpers.perturb(layer.network.conv_in, scale=0.1)
  x = data(7)
  with tf.GradientTape() as tape:
    z, ildj = layer._inverse_and_log_det(x)
    loss = tf.reduce_sum(z) + tf.reduce_sum(ildj)
  grads = tape.gradient(loss, layer.trainable_variables)
  assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
  # d ildj / d b_r = H W N sigmoid(u + 10) sigmoid(-u'): tiny yet exactly computable at r = -40.
  (bias_grad,) = [
    g.numpy() for v, g in zip(layer.trainable_variables, grads) if v is layer.network.conv_out.bias
  ]
  u = -40.0 + 2.0
  floored = -10.0 + np.logaddexp(0.0, u + 10.0)
  d_ildj = 1.0 / (1.0 + np.exp(-(u + 10.0))) / (1.0 + np.exp(floored))
  n, hh, ww, _ = SHAPE
  z2_term = (x.numpy()[..., 3] * np.exp(floored_log_scale(-40.0)) * d_ildj).sum()
  np.testing.assert_allclose(bias_grad[3], n * hh * ww * d_ildj + z2_term, rtol=1e-4)
