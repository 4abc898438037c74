"""Contracts of coupled_prior.py that its value tests left open (found by a mutation run,
docs/mutation.md): class labels reaching both decoders, default temperatures, float64 inputs,
batch shapes, tensor temperatures, error messages that name the function, bijector names."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.flows import coupled_prior as cp

CONDITIONAL = glow_tf2.GlowConfig(image_shape=(4, 4, 1), n_levels=2, depth=1, width=4, n_classes=3)
PLAIN = glow_tf2.GlowConfig(image_shape=(4, 4, 1), n_levels=2, depth=1, width=4)
SEED = tf.constant([3, 4], tf.int32)


def _pair(config):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (6, 4, 4, 1), dtype=np.uint8)
  x = glow_tf2.preprocess(images, 8, noise=False)
  labels = tf.constant([0, 1, 2, 0, 1, 2]) if config.n_classes else None
  glows = []
  for seed in (1, 2):
    glow = glow_tf2.Glow(config, seed=seed, name=f"glow_{seed}")
    glow.initialize(x, labels=labels)
    for v in glow.trainable_variables:  # class embeddings too: the labels must matter
      v.assign(v + 0.05 * tf.random.stateless_normal(v.shape, [seed, 7]))
    glows.append(glow)
  prior = cp.CoupledPrior(config, initial_rho=0.8)
  prior.r.assign(np.random.default_rng(1).uniform(-1.5, 1.5, prior.r.shape).astype(np.float32))
  return glows, prior, x, labels


def test_class_labels_reach_the_encoder_and_both_decoders():
  (a, b), prior, x, labels = _pair(CONDITIONAL)
  got = cp.translate(a, b, prior, x, 0.7, SEED, labels=labels)
  eps_a, _ = a.encode(x, labels=labels)
  eps_b = prior.conditional_sample(eps_a, 0.7, SEED)
  np.testing.assert_allclose(got.numpy(), b.decode(eps_b, labels=labels)[0].numpy(), atol=1e-5)
  x_a, x_b = cp.sample_pairs(a, b, prior, 6, 0.7, SEED, labels=labels)
  code_a, code_b = prior.sample(6, 0.7, SEED)
  np.testing.assert_allclose(x_a.numpy(), a.decode(code_a, labels=labels)[0].numpy(), atol=1e-5)
  np.testing.assert_allclose(x_b.numpy(), b.decode(code_b, labels=labels)[0].numpy(), atol=1e-5)
  # Other labels give other images on every side: they are used, not dropped.
  other = (labels + 1) % 3
  moved = cp.translate(a, b, prior, x, 0.7, SEED, labels=other)
  assert np.abs(moved.numpy() - got.numpy()).max() > 1e-3
  o_a, o_b = cp.sample_pairs(a, b, prior, 6, 0.7, SEED, labels=other)
  assert np.abs(o_a.numpy() - x_a.numpy()).max() > 1e-3
  assert np.abs(o_b.numpy() - x_b.numpy()).max() > 1e-3


def test_default_temperatures():
  (a, b), prior, x, _ = _pair(PLAIN)
  eps = prior.sample(4, 1.0, SEED)[0]
  np.testing.assert_array_equal(
    prior.conditional_sample(eps, seed=SEED).numpy(),
    prior.conditional_sample(eps, 1.0, SEED).numpy(),
  )
  for got, want in zip(prior.sample(4, seed=SEED), prior.sample(4, 1.0, SEED)):
    np.testing.assert_array_equal(got.numpy(), want.numpy())
  # translate defaults to the conditional mean (T = 0, no seed needed) ...
  np.testing.assert_array_equal(
    cp.translate(a, b, prior, x).numpy(), cp.translate(a, b, prior, x, 0.0).numpy()
  )
  # ... sample_pairs to the model itself (T = 1).
  for got, want in zip(
    cp.sample_pairs(a, b, prior, 3, seed=SEED), cp.sample_pairs(a, b, prior, 3, 1.0, SEED)
  ):
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_a_tensor_temperature_adds_noise():
  (a, b), prior, x, _ = _pair(PLAIN)
  mean = cp.translate(a, b, prior, x, 0.0)
  drawn = cp.translate(a, b, prior, x, tf.constant(0.5), SEED)
  assert np.abs(drawn.numpy() - mean.numpy()).max() > 1e-3
  np.testing.assert_allclose(
    drawn.numpy(), cp.translate(a, b, prior, x, 0.5, SEED).numpy(), atol=1e-6
  )


def test_float64_codes_and_batch_shapes():
  prior = cp.CoupledPrior(PLAIN, initial_rho=0.6)
  d = prior.data_dim
  rng = np.random.default_rng(0)
  eps, given = rng.normal(size=(2, 3, d)), rng.normal(size=(2, 3, d))  # float64, batch [2, 3]
  got = prior.conditional_log_prob(eps, given)
  assert got.shape == (2, 3) and got.dtype == tf.float32
  rho = 0.6
  var = 1 - rho**2
  want = -0.5 * np.sum(np.log(2 * np.pi * var) + (eps - rho * given) ** 2 / var, axis=-1)
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-4)
  marginal = prior.marginal_log_prob(eps)
  assert marginal.shape == (2, 3) and marginal.dtype == tf.float32
  mean = prior.conditional_sample(given, 0.0)
  assert mean.dtype == tf.float32
  np.testing.assert_allclose(mean.numpy(), rho * given, rtol=1e-5)
  noisy = prior.conditional_sample(given, 0.5, SEED)
  assert noisy.dtype == tf.float32 and noisy.shape == (2, 3, d)


def test_the_given_code_is_checked_too():
  prior = cp.CoupledPrior(PLAIN)
  d = prior.data_dim
  with pytest.raises(ValueError, match=rf"codes must be \[\.\.\., {d}\], got \(2, {d + 1}\)"):
    prior.conditional_log_prob(np.zeros((2, d), np.float32), np.zeros((2, d + 1), np.float32))
  with pytest.raises(ValueError, match=rf"codes must be \[\.\.\., {d}\], got \(2, {d + 1}\)"):
    prior.conditional_log_prob(np.zeros((2, d + 1), np.float32), np.zeros((2, d), np.float32))


def test_errors_name_the_function_and_bijectors_their_parts():
  (a, b), prior, x, _ = _pair(PLAIN)
  other = cp.CoupledPrior(glow_tf2.GlowConfig(image_shape=(4, 4, 1), n_levels=1, depth=1))
  cases = [
    ("coupled_translation", lambda: cp.coupled_translation(a, b, other)),
    ("translate", lambda: cp.translate(a, b, other, x)),
    ("sample_pairs", lambda: cp.sample_pairs(a, b, other, 2, 1.0, SEED)),
  ]
  for name, call in cases:
    with pytest.raises(ValueError, match=rf"^{name}: the prior's eps layout"):
      call()
  a2b = cp.coupled_translation(a, b, prior)
  assert a2b.name == "coupled_translation"
  assert [bij.name for bij in a2b.bijectors][1] == "coupled_rho"


def test_the_translations_scale_is_rho_spread_to_every_dimension():
  # rho is stored per channel of each level (fewer entries than D) and spread to eps's layout
  # when read: the deferred scale must say [D], the shape it has when read, not the variable's.
  (a, b), prior, _, _ = _pair(PLAIN)
  scale = cp.coupled_translation(a, b, prior).bijectors[1].scale
  assert prior.r.shape[0] < prior.data_dim
  assert scale.shape == [prior.data_dim]
  np.testing.assert_array_equal(tf.convert_to_tensor(scale).numpy(), prior.rho().numpy())


def test_channel_index_numbers_channels_level_after_level_on_three_levels():
  # Independent of the formula: give each dimension of eps its own number, cut eps into the
  # Glow's per-level [h, w, c] blocks, and read the channel of every number off its block.
  # (On two levels, resetting the offset to the last level's channels gave the same index.)
  config = glow_tf2.GlowConfig(image_shape=(8, 8, 1), n_levels=3, depth=1, width=4)
  blocks = glow_tf2.Glow(config, seed=0).split_eps(tf.range(config.data_dim)[None])
  expected = np.zeros(config.data_dim, np.int64)
  first = 0
  for block in blocks:
    block = block.numpy()[0]
    expected[block.reshape(-1)] = first + np.indices(block.shape)[-1].reshape(-1)
    first += block.shape[-1]
  assert len(blocks) == 3
  np.testing.assert_array_equal(cp.channel_index(config), expected)


def test_the_priors_variable_is_named_for_the_messages_that_name_it():
  # A non-finite save names the bad variables (train/loop.py).
  assert [v.name for v in cp.CoupledPrior(PLAIN).variables] == ["coupled_prior/r:0"]
  assert [v.name for v in cp.CoupledPrior(PLAIN, name="mine").variables] == ["mine/r:0"]


@pytest.mark.parametrize("floor", [1.0, 1.5, -0.1])
def test_the_floor_must_lie_strictly_inside_zero_one(floor):
  with pytest.raises(ValueError, match=r"CoupledPrior: floor must be in \(0, 1\)"):
    cp.CoupledPrior(PLAIN, floor=floor)


def test_an_initial_rho_at_its_bound_is_refused():
  # |rho| = sqrt(1 - floor) is rho_max * tanh(r) only as r -> infinity: atanh(1) has no value.
  bound = float(np.sqrt(1.0 - 0.19))
  with pytest.raises(ValueError, match=r"initial_rho must satisfy \|rho\| < sqrt\(1 - floor\)"):
    cp.CoupledPrior(PLAIN, initial_rho=-bound, floor=0.19)


@pytest.mark.parametrize("shape", [[None, None], [2, None, None]])
def test_codes_of_the_wrong_size_are_refused_when_only_their_size_is_known(shape):
  prior = cp.CoupledPrior(PLAIN)
  spec = tf.TensorSpec(shape[:-1] + [prior.data_dim + 1])
  with pytest.raises(ValueError, match=rf"codes must be \[\.\.\., {prior.data_dim}\]"):
    tf.function(prior.marginal_log_prob).get_concrete_function(spec)
