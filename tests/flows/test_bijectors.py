"""The mathematics of every Glow layer: round trips, log-dets against the Jacobian, fldj = -ildj."""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2 import flows as gb
from glow_tf2.flows import nets
from tests import helpers

CHANNELS = 4
SHAPE = (3, 4, 4, CHANNELS)


def _layers():
  """(id, factory) of every layer, each made non-trivial (perturbed or initialised on data)."""

  def rng():
    return np.random.default_rng(7)

  return [
    ("actnorm", lambda: gb.ActNorm(CHANNELS)),
    ("reverse", lambda: gb.ChannelPermutation.reverse(CHANNELS)),
    ("shuffle", lambda: gb.ChannelPermutation.shuffle(CHANNELS, seed=3)),
    ("conv", lambda: gb.InvertibleConv1x1(CHANNELS, rng())),
    ("lu", lambda: gb.LUConv1x1(CHANNELS, rng())),
    ("additive", lambda: gb.Coupling(CHANNELS, 8, "additive", rng())),
    ("affine", lambda: gb.Coupling(CHANNELS, 8, "affine", rng())),
    ("split_prior", lambda: gb.SplitPrior(CHANNELS)),
    ("top_prior_learntop", lambda: gb.TopPrior(SHAPE[1:], learntop=True, n_classes=0)),
    ("flow_step_affine_lu", lambda: gb.FlowStep(CHANNELS, 8, "lu", "affine", rng())),
    ("flow_step_additive_conv", lambda: gb.FlowStep(CHANNELS, 8, "conv", "additive", rng())),
  ]


LAYERS = _layers()


def _make(factory):
  layer = factory()
  helpers.perturb(layer, scale=0.2)
  return layer


def _data(seed=0):
  return tf.constant(np.random.default_rng(seed).normal(0, 1, SHAPE).astype(np.float32))


@pytest.mark.parametrize("name,factory", LAYERS, ids=[n for n, _ in LAYERS])
def test_round_trips(name, factory):
  layer = _make(factory)
  x = _data(0)
  # tf.identity: TFP's cache would otherwise hand back x itself and the test would check nothing.
  z = layer.inverse(x)
  assert not np.allclose(z.numpy(), x.numpy(), atol=1e-3), f"{name} is the identity"
  np.testing.assert_allclose(layer.forward(tf.identity(z)).numpy(), x.numpy(), atol=2e-5)
  z2 = _data(1)
  x2 = layer.forward(z2)
  np.testing.assert_allclose(layer.inverse(tf.identity(x2)).numpy(), z2.numpy(), atol=2e-5)


@pytest.mark.parametrize("name,factory", LAYERS, ids=[n for n, _ in LAYERS])
def test_log_det_matches_jacobian(name, factory):
  layer = _make(factory)
  x = _data(2)
  ildj = layer.inverse_log_det_jacobian(x).numpy()
  expected = helpers.jacobian_log_det(lambda t: layer._inverse_and_log_det(t)[0], x)
  np.testing.assert_allclose(ildj, expected, rtol=1e-4, atol=2e-4)
  z = _data(3)
  fldj = layer.forward_log_det_jacobian(z).numpy()
  expected = helpers.jacobian_log_det(lambda t: layer._forward_and_log_det(t)[0], z)
  np.testing.assert_allclose(fldj, expected, rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize("name,factory", LAYERS, ids=[n for n, _ in LAYERS])
def test_forward_log_det_is_minus_inverse_log_det(name, factory):
  layer = _make(factory)
  z = _data(4)
  x = layer.forward(z)
  fldj = layer.forward_log_det_jacobian(z)
  ildj = layer.inverse_log_det_jacobian(tf.identity(x))
  np.testing.assert_allclose(fldj.numpy(), -ildj.numpy(), rtol=1e-5, atol=1e-4)
  assert fldj.shape == (SHAPE[0],)


def test_squeeze_channel_order_and_round_trip():
  x = tf.reshape(tf.range(2 * 4 * 4 * 3, dtype=tf.float32), [2, 4, 4, 3])
  squeeze = gb.Squeeze()
  z = squeeze.inverse(x)
  assert z.shape == (2, 2, 2, 12)
  xs = x.numpy()
  for c in range(3):
    for dy in range(2):
      for dx in range(2):
        # Glow's order: new channel = c * 4 + dy * 2 + dx.
        np.testing.assert_array_equal(
          z.numpy()[:, :, :, c * 4 + dy * 2 + dx], xs[:, dy::2, dx::2, c]
        )
  np.testing.assert_array_equal(squeeze.forward(tf.identity(z)).numpy(), xs)
  assert squeeze.inverse_event_shape([4, 4, 3]) == [2, 2, 12]
  assert squeeze.forward_event_shape([2, 2, 12]) == [4, 4, 3]
  np.testing.assert_array_equal(squeeze.inverse_log_det_jacobian(x).numpy(), [0.0, 0.0])


def test_actnorm_initialize_normalizes_real_images():
  images = helpers.real_images(16, (8, 8, 3))
  x = tf.constant(images, tf.float32) / 255.0 - 0.5
  layer = gb.ActNorm(3)
  out = layer.initialize(x)
  mean, var = tf.nn.moments(out, axes=[0, 1, 2])
  np.testing.assert_allclose(mean.numpy(), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.sqrt(var.numpy()), 1.0, atol=1e-4)
  # The same map as the bijector's encoding, and no longer the identity.
  np.testing.assert_allclose(layer.inverse(tf.identity(x)).numpy(), out.numpy(), atol=1e-6)
  assert np.abs(layer.bias.numpy()).max() > 1e-3


def test_coupling_starts_at_its_documented_map():
  x = _data(5)
  additive = gb.Coupling(CHANNELS, 8, "additive", np.random.default_rng(0))
  np.testing.assert_allclose(additive.inverse(x).numpy(), x.numpy())
  affine = gb.Coupling(CHANNELS, 8, "affine", np.random.default_rng(0))
  z = affine.inverse(x).numpy()
  half = CHANNELS // 2
  np.testing.assert_allclose(z[..., :half], x.numpy()[..., :half])
  scale = 1.0 / (1.0 + np.exp(-2.0))  # sigmoid(0 + 2)
  np.testing.assert_allclose(z[..., half:], x.numpy()[..., half:] * scale, rtol=1e-6)
  np.testing.assert_allclose(
    affine.inverse_log_det_jacobian(x).numpy(), np.log(scale) * 4 * 4 * half, rtol=1e-5
  )


def test_affine_log_scale_does_not_underflow():
  layer = gb.Coupling(CHANNELS, 8, "affine", np.random.default_rng(0))
  layer.network.conv_out.bias.assign(tf.fill([CHANNELS], -200.0))
  ildj = layer.inverse_log_det_jacobian(_data(6))
  assert np.all(np.isfinite(ildj.numpy()))


def test_split_prior_is_the_gaussian_it_claims():
  layer = _make(lambda: gb.SplitPrior(CHANNELS))
  z = _data(7)
  eps_full = layer.inverse(z).numpy()
  mean, logs = (t.numpy() for t in layer.mean_and_logs(z[..., :2]))
  expected = (z.numpy()[..., 2:] - mean) / np.exp(logs)
  np.testing.assert_allclose(eps_full[..., 2:], expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(eps_full[..., :2], z.numpy()[..., :2])


def test_top_prior_ycond_depends_on_labels_and_requires_them():
  layer = gb.TopPrior(SHAPE[1:], learntop=True, n_classes=3)
  helpers.perturb(layer, scale=0.3)
  z = _data(8)
  a = layer.inverse_log_det_jacobian(z, labels=tf.constant([0, 0, 0]))
  b = layer.inverse_log_det_jacobian(tf.identity(z), labels=tf.constant([1, 2, 1]))
  assert np.abs(a.numpy() - b.numpy()).min() > 1e-3
  with pytest.raises(ValueError, match="needs `labels`"):
    layer.inverse(tf.identity(z))


def test_equal_layers_do_not_share_cache_entries():
  # Two bijectors built from equal arguments must not answer for each other (TFP keys its cache on
  # parameters; model A and model B are built from one config).
  a = gb.LUConv1x1(CHANNELS, np.random.default_rng(0))
  b = gb.LUConv1x1(CHANNELS, np.random.default_rng(0))
  helpers.perturb(b, seed=9)
  x = _data(9)
  za = a.inverse(x)
  zb = b.inverse(x)
  assert not np.allclose(za.numpy(), zb.numpy(), atol=1e-3)
  # b.forward of a's output must compute, not return x from a's cache entry.
  assert not np.allclose(b.forward(za).numpy(), x.numpy(), atol=1e-3)


@pytest.mark.parametrize("kind", ["conv", "lu"])
def test_conv1x1_starts_as_rotation(kind):
  rng = np.random.default_rng(0)
  layer = gb.InvertibleConv1x1(8, rng) if kind == "conv" else gb.LUConv1x1(8, rng)
  w = layer.matrix().numpy()
  np.testing.assert_allclose(layer.inverse_matrix().numpy() @ w, np.eye(8), atol=1e-5)
  np.testing.assert_allclose(w @ w.T, np.eye(8), atol=1e-5)
  np.testing.assert_allclose(
    layer.inverse_log_det_jacobian(_data(10)[..., :4].numpy().repeat(2, -1)).numpy(), 0.0, atol=1e-4
  )


def test_bad_layer_arguments_raise():
  with pytest.raises(ValueError, match="not a permutation"):
    gb.ChannelPermutation([0, 0, 1])
  with pytest.raises(ValueError, match="kind must be one of"):
    gb.Coupling(4, 8, "spline", np.random.default_rng(0))
  with pytest.raises(ValueError, match="even number of channels"):
    gb.Coupling(3, 8, "affine", np.random.default_rng(0))


def test_affine_coupling_is_its_formula_on_the_network_output():
  # Shift and scale logit are the two channel halves of the network's output h.
  layer = _make(lambda: gb.Coupling(CHANNELS, 8, "affine", np.random.default_rng(7)))
  x = _data(11)
  x1, x2 = x[..., :2].numpy(), x[..., 2:].numpy()
  h = layer.network.reference(x1).numpy()
  logit = h[..., 2:] + 2.0
  assert logit.min() > 0.0  # above the soft floor's knee, where it is the identity to 5e-5
  expected = (x2 + h[..., :2]) / (1.0 + np.exp(-logit))
  z = layer.inverse(x).numpy()
  np.testing.assert_allclose(z[..., :2], x1, rtol=0, atol=0)
  np.testing.assert_allclose(z[..., 2:], expected, rtol=1e-4, atol=1e-4)


def _edge_conv_by_definition(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
  """Glow's edge-bias conv as Glow writes it: append a channel that is 1 on the zero padding,
  then a VALID 3x3 conv, here as explicit sums over the taps."""
  n, height, width, _ = x.shape
  padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
  marker = np.pad(
    np.zeros((n, height, width, 1)), [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=1.0
  )
  stacked = np.concatenate([padded, marker], axis=-1)
  out = np.zeros((n, height, width, kernel.shape[-1]))
  for dy in range(3):
    for dx in range(3):
      out += stacked[:, dy : dy + height, dx : dx + width, :] @ kernel[dy, dx]
  return out


@pytest.mark.parametrize("in_channels", [3, 0])
def test_edge_bias_conv_equals_glow_definition(in_channels):
  rng = np.random.default_rng(5)
  x = rng.normal(size=(2, 5, 6, in_channels)).astype(np.float32)
  kernel = rng.normal(size=(3, 3, in_channels + 1, 7)).astype(np.float32)
  expected = _edge_conv_by_definition(x, kernel)
  # Spatial shape known when tracing (the matmul path) and unknown (the conv path).
  static = nets.conv3x3_edge(tf.constant(x), tf.constant(kernel)).numpy()
  dynamic = tf.function(
    nets.conv3x3_edge,
    input_signature=[tf.TensorSpec([None, None, None, in_channels]), tf.TensorSpec(kernel.shape)],
  )(x, kernel)
  for got in (static, dynamic.numpy()):
    np.testing.assert_allclose(np.broadcast_to(got, expected.shape), expected, rtol=1e-5, atol=1e-5)


def test_folded_coupling_network_equals_the_unfolded_one():
  net = nets.CouplingNetwork(3, 16, 8, np.random.default_rng(0))
  x = tf.constant(np.random.default_rng(1).normal(size=(2, 5, 5, 3)).astype(np.float32))
  net.initialize(x)
  helpers.perturb(net, scale=0.2)
  np.testing.assert_allclose(
    net.hidden(x).numpy(), net.hidden_reference(x).numpy(), rtol=1e-5, atol=1e-5
  )
  np.testing.assert_allclose(net(x).numpy(), net.reference(x).numpy(), rtol=1e-4, atol=1e-5)
  assert np.abs(net(x).numpy()).max() > 0.1


@pytest.mark.parametrize("permutation", ["conv", "lu"])
def test_flow_step_folded_mixing_equals_actnorm_then_conv(permutation):
  step = _make(lambda: gb.FlowStep(CHANNELS, 8, permutation, "affine", np.random.default_rng(3)))
  x = _data(12)
  h, ld = step._mixing_inverse(x)
  h_ref, ld_a = step.actnorm._inverse_and_log_det(x)
  h_ref, ld_b = step.permutation._inverse_and_log_det(h_ref)
  np.testing.assert_allclose(h.numpy(), h_ref.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ld.numpy(), (ld_a + ld_b).numpy(), rtol=1e-5, atol=1e-5)
  back, ld_back = step._mixing_forward(h)
  np.testing.assert_allclose(back.numpy(), x.numpy(), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(ld_back.numpy(), -ld.numpy(), rtol=1e-5, atol=1e-5)
