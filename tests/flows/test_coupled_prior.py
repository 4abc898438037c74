"""The coupled prior: its density against a full-covariance normal, its samples, rho's bounds, and
the translations between two Glows (T = 0 bijector, T > 0 draws, joint pairs)."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import glow_tf2
from glow_tf2.flows import coupled_prior as cp
from tests import helpers

tfd = tfp.distributions

# D = 16: level 0 eps [2, 2, 2] (8 dims, 2 channels), top eps [1, 1, 8] (8 dims, 8 channels).
SMALL = glow_tf2.GlowConfig(image_shape=(4, 4, 1), n_levels=2, depth=1, width=4)
FLOOR = 1e-4


def _prior(config=SMALL, per_dimension=False, seed=0, **kwargs):
  """A prior whose rho differ by channel, negative ones included."""
  prior = cp.CoupledPrior(config, initial_rho=0.9, per_dimension=per_dimension, **kwargs)
  rng = np.random.default_rng(seed)
  prior.r.assign(rng.uniform(-2.0, 2.0, prior.r.shape).astype(np.float32))
  return prior


def _expected_rho(prior) -> np.ndarray:
  """rho `[D]` from r in numpy, laid out as Glow's eps (blocks finest first, NHWC row-major)."""
  r = prior.r.numpy().astype(np.float64)
  rho_params = math.sqrt(1.0 - prior.floor) * np.tanh(r)
  if prior.per_dimension:
    return rho_params
  blocks, offset = [], 0
  for h, w, c in prior.config.eps_shapes:
    blocks.append(np.broadcast_to(rho_params[offset : offset + c], (h, w, c)).reshape(-1))
    offset += c
  return np.concatenate(blocks)


def _codes(n, d, seed):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, d)).astype(np.float32) for _ in range(2))


def test_rho_is_shared_over_positions_per_channel_of_each_level():
  config = glow_tf2.GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=1, width=4)
  prior = _prior(config)
  assert prior.r.shape == (6 + 24,)  # channels of eps: level 0 [4, 4, 6], top [2, 2, 24]
  rho = prior.rho().numpy()
  np.testing.assert_allclose(rho, _expected_rho(prior), rtol=1e-6)
  # Through Glow's own split of eps: every position of a level holds that level's channel rho.
  blocks = glow_tf2.Glow(config, seed=0).split_eps(rho[None])
  r = prior.r.numpy()
  np.testing.assert_allclose(blocks[0].numpy()[0, 3, 1], prior.rho_max * np.tanh(r[:6]), 1e-6)
  np.testing.assert_allclose(blocks[1].numpy()[0, 0, 1], prior.rho_max * np.tanh(r[6:]), 1e-6)


def test_per_dimension_rho():
  prior = _prior(per_dimension=True)
  assert prior.r.shape == (SMALL.data_dim,)
  np.testing.assert_allclose(prior.rho().numpy(), _expected_rho(prior), rtol=1e-6)
  assert len(set(np.round(prior.rho().numpy(), 6))) == SMALL.data_dim


def test_initial_rho():
  prior = cp.CoupledPrior(SMALL, initial_rho=-0.95)
  np.testing.assert_allclose(prior.rho().numpy(), np.full(SMALL.data_dim, -0.95), rtol=1e-6)
  np.testing.assert_allclose(
    np.exp(prior.log_variance().numpy()), np.full(SMALL.data_dim, 1 - 0.95**2), rtol=1e-5
  )


@pytest.mark.parametrize("per_dimension", [False, True])
def test_joint_log_prob_is_the_full_covariance_normal_of_the_stacked_pair(per_dimension):
  prior = _prior(per_dimension=per_dimension)
  d = SMALL.data_dim
  rho = _expected_rho(prior)
  cov = np.block([[np.eye(d), np.diag(rho)], [np.diag(rho), np.eye(d)]])
  mvn = tfd.MultivariateNormalFullCovariance(np.zeros(2 * d), cov)
  eps_a, eps_b = _codes(5, d, seed=1)
  # Correlated pairs too, where the density is high and the cross term matters most.
  eps_b[:2] = rho[None].astype(np.float32) * eps_a[:2] + 0.1 * eps_b[:2]
  expected = mvn.log_prob(np.concatenate([eps_a, eps_b], -1).astype(np.float64)).numpy()
  np.testing.assert_allclose(prior.log_prob(eps_a, eps_b).numpy(), expected, rtol=1e-5)


def test_conditionals_are_joint_minus_marginal():
  prior = _prior()
  d = SMALL.data_dim
  eps_a, eps_b = _codes(6, d, seed=2)
  joint = prior.log_prob(eps_a, eps_b).numpy()
  b_given_a = prior.conditional_log_prob(eps_b, eps_a).numpy()
  a_given_b = prior.conditional_log_prob(eps_a, eps_b).numpy()
  np.testing.assert_allclose(b_given_a, joint - prior.marginal_log_prob(eps_a).numpy(), rtol=1e-5)
  # The other factorisation of the same joint: the model is symmetric in A and B.
  np.testing.assert_allclose(a_given_b, joint - prior.marginal_log_prob(eps_b).numpy(), rtol=1e-5)
  # And against TFP's normal, per dimension.
  rho = _expected_rho(prior)
  normal = tfd.Normal(rho * eps_a.astype(np.float64), np.sqrt(1 - rho**2))
  expected = np.sum(normal.log_prob(eps_b.astype(np.float64)).numpy(), -1)
  np.testing.assert_allclose(b_given_a, expected, rtol=1e-5)
  marginal = np.sum(tfd.Normal(0.0, 1.0).log_prob(eps_a).numpy(), -1)
  np.testing.assert_allclose(prior.marginal_log_prob(eps_a).numpy(), marginal, rtol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_samples_have_the_moments_and_correlations_of_the_model(temperature):
  prior = _prior(seed=3)
  n = 40000
  eps_a, eps_b = (e.numpy().astype(np.float64) for e in prior.sample(n, temperature, seed=[4, 5]))
  rho = _expected_rho(prior)
  t2 = temperature**2
  # Standard errors: mean T / sqrt(n) = 0.005 T, variance T^2 sqrt(2 / n) = 0.007 T^2,
  # correlation (1 - rho^2) / sqrt(n) <= 0.005; the bounds are 5 of them or more.
  for eps in (eps_a, eps_b):
    np.testing.assert_allclose(eps.mean(0), 0.0, atol=0.03 * temperature)
    np.testing.assert_allclose(eps.var(0), t2, atol=0.04 * t2)
  corr = np.mean(eps_a * eps_b, 0) / np.sqrt(eps_a.var(0) * eps_b.var(0))
  np.testing.assert_allclose(corr, rho, atol=0.03)
  assert np.any(rho < -0.5) and np.any(rho > 0.5)  # the check covers both signs
  # Different draws for different seeds, the same for the same seed.
  again = prior.sample(4, temperature, seed=[4, 5])[1].numpy()
  other = prior.sample(4, temperature, seed=[4, 6])[1].numpy()
  np.testing.assert_array_equal(again, prior.sample(4, temperature, seed=[4, 5])[1].numpy())
  assert not np.allclose(again, other)


def test_conditional_sample():
  prior = _prior(seed=4)
  d = SMALL.data_dim
  rho = _expected_rho(prior)
  given = np.random.default_rng(5).normal(size=(1, d)).astype(np.float32)
  np.testing.assert_allclose(prior.conditional_sample(given, 0.0).numpy()[0], rho * given[0], 1e-6)
  draws = prior.conditional_sample(np.repeat(given, 30000, 0), 0.7, seed=[1, 2]).numpy()
  np.testing.assert_allclose(draws.mean(0), rho * given[0], atol=0.7 * 0.03)
  np.testing.assert_allclose(draws.var(0), 0.49 * (1 - rho**2), rtol=0.06)
  with pytest.raises(ValueError, match="needs a seed"):
    prior.conditional_sample(given, 0.5)


def test_conditional_sample_of_given_noise_is_the_seeds_draw_of_that_noise():
  prior = _prior(seed=4)
  d = SMALL.data_dim
  given = np.random.default_rng(6).normal(size=(3, d)).astype(np.float32)
  noise = tf.random.stateless_normal([3, d], seed=[7, 8])
  got = prior.conditional_sample(given, 0.6, noise=noise).numpy()
  np.testing.assert_array_equal(got, prior.conditional_sample(given, 0.6, seed=[7, 8]).numpy())
  sd = np.sqrt(1 - _expected_rho(prior).astype(np.float64) ** 2)
  expected = _expected_rho(prior) * given + 0.6 * sd * noise.numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  # Per-row temperatures [N, 1]: a row at T = 0 is the mean exactly, its noise unused.
  t = np.array([[0.0], [0.6], [1.2]], np.float32)
  rows = prior.conditional_sample(given, t, noise=noise).numpy()
  np.testing.assert_array_equal(rows[0], prior.conditional_sample(given, 0.0).numpy()[0])
  np.testing.assert_array_equal(rows[1], got[1])
  # At a Python T = 0 no noise is needed.
  np.testing.assert_array_equal(
    prior.conditional_sample(given, 0.0, noise=noise).numpy(),
    prior.conditional_sample(given, 0.0).numpy(),
  )


def test_rho_never_reaches_one_and_the_loss_and_gradient_stay_finite_at_the_floor():
  prior = cp.CoupledPrior(SMALL, initial_rho=0.9, floor=FLOOR)
  eps_a, eps_b = _codes(4, SMALL.data_dim, seed=6)
  for r in (30.0, -30.0, 1e4, -1e4):
    prior.r.assign(tf.fill(prior.r.shape, r))
    rho = prior.rho().numpy()
    assert np.all(np.abs(rho) < 1.0), r
    np.testing.assert_allclose(np.abs(rho), math.sqrt(1 - FLOOR), rtol=1e-6)
    np.testing.assert_allclose(np.exp(prior.log_variance().numpy()), FLOOR, rtol=1e-4)
    for b in (eps_b, np.sign(r) * eps_a):  # far from and exactly on the conditional mean
      with tf.GradientTape() as tape:
        log_prob = prior.log_prob(eps_a, b)
      grad = tape.gradient(log_prob, prior.r)
      assert np.all(np.isfinite(log_prob.numpy())) and np.all(np.isfinite(grad.numpy())), r
  # Training on perfectly correlated codes drives rho to its bound and no further.
  prior.r.assign(tf.zeros_like(prior.r) + 0.5)
  optimizer = tf.keras.optimizers.Adam(0.5)
  for _ in range(100):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(prior.log_prob(eps_a, eps_a))
    optimizer.apply_gradients([(tape.gradient(loss, prior.r), prior.r)])
  rho = prior.rho().numpy()
  assert np.all(rho < 1.0) and np.all(rho > 0.9999), rho
  assert np.isfinite(loss.numpy())
  assert np.all(np.exp(prior.log_variance().numpy()) >= FLOOR * (1 - 1e-5))


def test_bad_arguments():
  with pytest.raises(ValueError, match="initial_rho"):
    cp.CoupledPrior(SMALL, initial_rho=1.0)
  with pytest.raises(ValueError, match="initial_rho"):
    cp.CoupledPrior(SMALL, initial_rho=-0.99999, floor=1e-4)
  with pytest.raises(ValueError, match="floor"):
    cp.CoupledPrior(SMALL, floor=0.0)
  prior = cp.CoupledPrior(SMALL)
  with pytest.raises(ValueError, match=r"codes must be \[..., 16\]"):
    prior.log_prob(np.zeros((2, 15), np.float32), np.zeros((2, 15), np.float32))
  with pytest.raises(ValueError, match="needs a stateless seed"):
    prior.sample(2)
  with pytest.raises(ValueError, match="temperature must be >= 0"):
    prior.sample(2, -1.0, seed=[1, 2])
  with pytest.raises(ValueError, match="temperature must be >= 0"):
    prior.conditional_sample(np.zeros((2, 16), np.float32), -0.5, seed=[1, 2])


# ------------------------------------------------------------------------------------------------
# Translations between two tiny Glows.

PAIR = glow_tf2.GlowConfig(
  image_shape=(8, 8, 3), n_levels=2, depth=2, width=8, permutation="lu", coupling="affine"
)


@pytest.fixture(scope="module")
def pair():
  images = helpers.real_images(4, PAIR.image_shape, seed=0)
  x_a = glow_tf2.preprocess(images, noise=False)
  x_b = glow_tf2.preprocess(255 - images, noise=False)
  glow_a, glow_b = glow_tf2.Glow(PAIR, seed=0), glow_tf2.Glow(PAIR, seed=1)
  glow_a.initialize(x_a)
  glow_b.initialize(x_b)
  helpers.perturb(glow_a, 0.02, seed=0)
  helpers.perturb(glow_b, 0.02, seed=1)
  prior = cp.CoupledPrior(PAIR, initial_rho=0.9)
  prior.r.assign(np.random.default_rng(0).uniform(-1.5, 1.5, prior.r.shape).astype(np.float32))
  return glow_a, glow_b, prior, x_a, x_b


def test_t0_translation_is_decode_b_of_rho_times_encode_a(pair):
  glow_a, glow_b, prior, x_a, _ = pair
  bijector = cp.coupled_translation(glow_a, glow_b, prior)
  eps_a, _ = glow_a.encode(x_a)
  expected = glow_b.decode(_expected_rho(prior)[None].astype(np.float32) * eps_a.numpy())[0]
  got = bijector.forward(tf.identity(x_a)).numpy()
  np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
  np.testing.assert_allclose(cp.translate(glow_a, glow_b, prior, x_a, 0.0).numpy(), got, atol=1e-5)
  # Not the plain translation (rho = 1): the scale is really in the chain.
  plain = glow_tf2.translation(glow_a, glow_b).forward(tf.identity(x_a)).numpy()
  assert np.max(np.abs(plain - got)) > 1e-2


def test_t0_translation_round_trips_and_its_log_det_is_the_jacobian(pair):
  glow_a, glow_b, prior, x_a, x_b = pair
  bijector = cp.coupled_translation(glow_a, glow_b, prior)
  # tf.identity throughout: TFP's cache would otherwise answer the round trip from memory.
  y = bijector.forward(tf.identity(x_a))
  np.testing.assert_allclose(bijector.inverse(tf.identity(y)).numpy(), x_a.numpy(), atol=1e-4)
  x = bijector.inverse(tf.identity(x_b))
  np.testing.assert_allclose(bijector.forward(tf.identity(x)).numpy(), x_b.numpy(), atol=1e-4)
  fldj = bijector.forward_log_det_jacobian(tf.identity(x_a), event_ndims=3).numpy()
  numeric = helpers.jacobian_log_det(lambda t: bijector.forward(tf.identity(t)), x_a)
  np.testing.assert_allclose(fldj, numeric, rtol=1e-4, atol=1e-2)
  # = logdet_A + sum log|rho| + log|det d x_B / d eps_B|, term by term.
  eps_a, ld_a = glow_a.encode(x_a)
  _, ld_b = glow_b.decode(prior.rho() * eps_a)
  expected = ld_a.numpy() + np.sum(np.log(np.abs(_expected_rho(prior)))) + ld_b.numpy()
  np.testing.assert_allclose(fldj, expected, rtol=1e-5, atol=1e-3)
  ildj = bijector.inverse_log_det_jacobian(tf.identity(y), event_ndims=3).numpy()
  np.testing.assert_allclose(ildj, -fldj, rtol=1e-4, atol=1e-3)


def test_t0_translation_follows_rho_as_it_trains(pair):
  glow_a, glow_b, prior, x_a, _ = pair
  bijector = cp.coupled_translation(glow_a, glow_b, prior)
  before = bijector.forward(tf.identity(x_a)).numpy()
  saved = prior.r.numpy()
  try:
    prior.r.assign(saved * 0.5)
    after = bijector.forward(tf.identity(x_a)).numpy()
    expected = cp.translate(glow_a, glow_b, prior, x_a, 0.0).numpy()
  finally:
    prior.r.assign(saved)
  np.testing.assert_allclose(after, expected, atol=1e-5)
  assert np.max(np.abs(after - before)) > 1e-3


def test_translation_at_temperature(pair):
  glow_a, glow_b, prior, x_a, _ = pair
  eps_a, _ = glow_a.encode(x_a)
  rho = _expected_rho(prior).astype(np.float32)
  noise = tf.random.stateless_normal(eps_a.shape, [3, 4]).numpy()
  expected_eps = rho * eps_a.numpy() + 0.6 * np.sqrt(1 - rho**2) * noise
  expected = glow_b.decode(expected_eps)[0].numpy()
  got = cp.translate(glow_a, glow_b, prior, x_a, 0.6, seed=[3, 4]).numpy()
  np.testing.assert_allclose(got, expected, atol=1e-4)
  other = cp.translate(glow_a, glow_b, prior, x_a, 0.6, seed=[3, 5]).numpy()
  assert np.max(np.abs(other - got)) > 1e-3
  # B -> A: the same with the models swapped.
  eps_b = prior.conditional_sample(glow_b.encode(got)[0], 0.0)
  np.testing.assert_allclose(
    cp.translate(glow_b, glow_a, prior, got, 0.0).numpy(),
    glow_a.decode(eps_b)[0].numpy(),
    atol=1e-5,
  )


def test_sample_pairs_decodes_a_draw_of_the_prior(pair):
  glow_a, glow_b, prior, _, _ = pair
  x_a, x_b = cp.sample_pairs(glow_a, glow_b, prior, 3, temperature=0.5, seed=[7, 8])
  eps_a, eps_b = prior.sample(3, 0.5, seed=[7, 8])
  np.testing.assert_allclose(x_a.numpy(), glow_a.decode(eps_a)[0].numpy(), atol=1e-6)
  np.testing.assert_allclose(x_b.numpy(), glow_b.decode(eps_b)[0].numpy(), atol=1e-6)
  # And encodes back to the very codes drawn (the decoders are the models' inverses).
  back_a, back_b = glow_a.encode(x_a)[0].numpy(), glow_b.encode(x_b)[0].numpy()
  np.testing.assert_allclose(back_a, eps_a.numpy(), atol=1e-3)
  np.testing.assert_allclose(back_b, eps_b.numpy(), atol=1e-3)


def test_mismatched_models_are_refused(pair):
  glow_a, _, prior, _, _ = pair
  other = glow_tf2.Glow(glow_tf2.GlowConfig(image_shape=(8, 8, 1), n_levels=2, depth=1, width=4))
  with pytest.raises(ValueError, match="different data dims"):
    cp.coupled_translation(glow_a, other, prior)
  with pytest.raises(ValueError, match="eps layout"):
    cp.translate(glow_a, glow_a, cp.CoupledPrior(SMALL), np.zeros((1, 8, 8, 3), np.float32))
