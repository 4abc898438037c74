"""Tweedie's step: the flow's score against finite differences of its own log-density."""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2 import denoise
from glow_tf2 import losses
from tests import helpers

SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def glow():
  config = helpers.tiny_glow_config(image_shape=SHAPE)
  images = helpers.real_images(16, SHAPE, seed=3)
  return helpers.initialized_glow(config, images, 1, name="denoise_glow", perturb_scale=0.1)


def _log_prob(glow, x):
  return losses.log_prob_and_eps(glow, tf.constant(x, tf.float32))[0].numpy().astype(np.float64)


def test_score_is_the_gradient_of_the_log_density(glow, rng):
  x = rng.uniform(-0.4, 0.4, (3, *SHAPE)).astype(np.float32)
  got = denoise.score(glow, x).numpy()
  assert got.shape == x.shape and np.abs(got).max() > 0.1
  for _ in range(4):  # directional derivatives along random unit directions, per row
    v = rng.normal(size=x.shape).astype(np.float32)
    v /= np.sqrt((v**2).reshape(3, -1).sum(1))[:, None, None, None]
    h = 1e-3  # the log-density curves fast in places: 1e-2 is off by 10% there
    numeric = (_log_prob(glow, x + h * v) - _log_prob(glow, x - h * v)) / (2 * h)
    analytic = (got * v).reshape(3, -1).sum(1)
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-2)


def test_rows_are_independent(glow, rng):
  x = rng.uniform(-0.4, 0.4, (4, *SHAPE)).astype(np.float32)
  np.testing.assert_allclose(
    denoise.score(glow, x[1:2]).numpy()[0], denoise.score(glow, x).numpy()[1], atol=1e-4
  )


def test_tweedie_step(glow, rng):
  x = rng.uniform(-0.4, 0.4, (2, *SHAPE)).astype(np.float32)
  np.testing.assert_array_equal(denoise.tweedie(glow, x, 0.0).numpy(), x)
  sigma = 0.05
  np.testing.assert_allclose(
    denoise.tweedie(glow, x, sigma).numpy(),
    x + sigma**2 * denoise.score(glow, x).numpy(),
    rtol=1e-6,
    atol=1e-7,
  )
