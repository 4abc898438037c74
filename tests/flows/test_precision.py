"""Mixed precision: 16-bit networks in a float32 flow stay exactly invertible and close to float32.

Tolerances, and why:
- one layer's round trip is float32-exact and its two log-dets exact negatives, because both
  directions compute the same 16-bit network output from the same input; a whole model's round
  trip is held to the float32 model's bound (2e-5) with bfloat16, 2e-4 with float16 (see there);
- a mixed network's output against the float32 one: bfloat16 keeps 8 significant bits (relative
  rounding 2^-9 = 0.2% per op), so 3% of the output's scale; float16 (11 bits) 0.5%;
- bits/dim of the mixed model against the float32 one of the same weights: 0.01 bits/dim.
"""

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.flows import coupling
from glow_tf2.flows import nets
from glow_tf2.flows import precision
from glow_tf2.flows import split_prior
from tests import helpers

MIXED = ("mixed_bfloat16", "mixed_float16")


def _config(precision_name: str, **overrides) -> glow_tf2.GlowConfig:
  """tests.helpers' tiny Glow at 8x8x3, 2 steps a level of width 16, in `precision_name`."""
  fields = {"image_shape": (8, 8, 3), "depth": 2, "width": 16, "precision": precision_name}
  return helpers.tiny_glow_config(**{**fields, **overrides})


def _images(n=8, shape=(8, 8, 3)):
  return helpers.real_images(n, shape, seed=1)


def _model(precision_name: str, perturb: float = 0.02, **overrides) -> glow_tf2.Glow:
  """An initialised Glow with every layer moved off the identity (same weights for every seed 0)."""
  config = _config(precision_name, **overrides)
  glow = helpers.initialized_glow(config, _images(shape=config.image_shape), seed=0)
  helpers.perturb(glow, scale=perturb, seed=0)
  return glow


def _x(config):
  return glow_tf2.preprocess(_images(shape=config.image_shape), 8, noise=False)


def test_compute_dtype_and_bad_names():
  assert precision.compute_dtype("float32") == tf.float32
  assert precision.compute_dtype("mixed_bfloat16") == tf.bfloat16
  assert precision.compute_dtype("mixed_float16") == tf.float16
  assert precision.needs_loss_scale("mixed_float16")
  assert not precision.needs_loss_scale("mixed_bfloat16")
  with pytest.raises(ValueError, match="precision must be one of"):
    precision.compute_dtype("bfloat16")


@pytest.mark.parametrize("name", MIXED)
def test_variables_stay_float32_and_the_networks_compute_in_16_bits(name):
  glow = _model(name)
  assert glow.trainable_variables
  assert {v.dtype for v in glow.variables} == {tf.float32}
  dtype = precision.compute_dtype(name)
  fn = tf.function(lambda x: glow.encode(x))
  graph = fn.get_concrete_function(tf.TensorSpec((2, 8, 8, 3), tf.float32)).graph
  convs = [op for op in helpers.operations(graph) if op.type == "Conv2D"]
  # Every 3x3 conv of every coupling network and split prior: depth * levels * 2 + splits.
  assert len(convs) == 2 * 2 * 2 + 1
  assert {op.inputs[0].dtype for op in convs} == {dtype}
  # The 1x1 invertible convolutions, ActNorm and every log-det are float32.
  eps, log_det = fn(tf.zeros([2, 8, 8, 3]))
  assert eps.dtype == tf.float32 and log_det.dtype == tf.float32
  logs = [op for op in helpers.operations(graph) if op.type in ("LogSigmoid", "Softplus", "Exp")]
  assert logs and {op.outputs[0].dtype for op in logs} == {tf.float32}


def test_float32_model_has_no_casts_in_its_networks():
  glow = _model("float32")
  fn = tf.function(lambda x: glow.encode(x))
  graph = fn.get_concrete_function(tf.TensorSpec((2, 8, 8, 3), tf.float32)).graph
  dtypes = {t.dtype for op in helpers.operations(graph) for t in op.outputs}
  assert tf.bfloat16 not in dtypes and tf.float16 not in dtypes


@pytest.mark.parametrize("name, bound", [("mixed_bfloat16", 2e-5), ("mixed_float16", 2e-4)])
def test_mixed_model_round_trip_is_exact_to_float32(name, bound):
  """A whole model: float32 rounding, amplified only where it flips a 16-bit rounding.

  Each layer sees its input bit for bit (the test below); across a chain, decoding reaches a
  coupling with its input equal to encoding's up to float32 rounding (~1e-7), and now and then
  such a difference crosses a rounding boundary of the 16-bit cast (probability ~2^-16 per
  element for bfloat16, ~2^-13 for float16), moving that network input by one 16-bit ulp. With
  networks computing in 16 bits on independently rounded inputs, the error would be ~1e-3.
  """
  glow = _model(name)
  reference = _model("float32")
  x = _x(glow.config)
  for model, limit in ((glow, bound), (reference, 2e-5)):
    eps, ld_encode = model.encode(x)
    x_back, ld_decode = model.decode(eps)
    error = np.abs(x_back.numpy() - x.numpy()).max()
    assert error < limit, (model.config.precision, error)
    # The two directions add the same per-layer log-dets in opposite orders: float32 rounding of
    # a sum of magnitude ~|ld| only.
    np.testing.assert_allclose(
      ld_encode.numpy(), -ld_decode.numpy(), rtol=0, atol=1e-5 * np.abs(ld_encode.numpy()).max()
    )


@pytest.mark.parametrize("name", MIXED)
def test_coupling_and_prior_log_dets_are_exact_negatives(name):
  """One layer: ildj(x) = -fldj(encode(x)) bit for bit, and the round trip is exact to float32."""
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(4, 6, 6, 8)).astype(np.float32))
  for layer in (
    coupling.Coupling(8, 16, "affine", np.random.default_rng(0), precision=name),
    split_prior.SplitPrior(8, precision=name),
  ):
    helpers.perturb(layer, scale=0.1, seed=2)
    z, ildj = layer._inverse_and_log_det(x)
    x_back, fldj = layer._forward_and_log_det(z)
    np.testing.assert_array_equal(ildj.numpy(), -fldj.numpy())
    assert np.abs(ildj.numpy()).min() > 0.1  # a real log-det, not the identity's 0
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name, tolerance", [("mixed_bfloat16", 0.03), ("mixed_float16", 0.005)])
def test_mixed_network_output_is_close_to_float32(name, tolerance):
  """The fast 16-bit path against the plain float32 reference path of the same weights."""
  mixed = nets.CouplingNetwork(
    4, 32, 8, np.random.default_rng(0), compute_dtype=precision.compute_dtype(name)
  )
  helpers.perturb(mixed, scale=0.1, seed=3)
  x = tf.constant(np.random.default_rng(1).normal(size=(4, 8, 8, 4)).astype(np.float32))
  out = mixed(x)
  assert out.dtype == tf.float32
  expected = mixed.reference(x).numpy()  # float32, unfolded
  scale = np.abs(expected).max()
  assert scale > 0.1
  error = np.abs(out.numpy() - expected).max() / scale
  assert error < tolerance, error
  assert error > 1e-6  # it really computed in 16 bits


@pytest.mark.parametrize("name", MIXED)
def test_mixed_log_likelihood_and_gradients_are_close_to_float32(name):
  glow, reference = _model(name), _model("float32")
  images = _images()
  results = []
  for model in (glow, reference):
    with tf.GradientTape() as tape:
      bits = tf.reduce_mean(glow_tf2.bits_per_dim(model, images, noise=False))
    grads = tape.gradient(bits, model.trainable_variables)
    results.append((float(bits), np.concatenate([g.numpy().ravel() for g in grads])))
  (bits_mixed, g_mixed), (bits_float, g_float) = results
  assert abs(bits_mixed - bits_float) < 0.01, (bits_mixed, bits_float)
  assert abs(bits_mixed - bits_float) > 0  # the networks really differ
  assert np.all(np.isfinite(g_mixed))
  cosine = g_mixed @ g_float / np.linalg.norm(g_mixed) / np.linalg.norm(g_float)
  assert cosine > 0.99, cosine
