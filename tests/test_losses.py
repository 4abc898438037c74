"""preprocess / postprocess / bits-per-dim arithmetic against independent numpy computations."""

import math

import numpy as np
import pytest

import glow_tf2
from glow_tf2 import losses
from tests import helpers


@pytest.mark.parametrize("n_bits", [8, 5, 1])
def test_mid_bin_round_trip_is_exact(n_bits):
  images = helpers.real_images(8, (16, 16, 3))
  x = glow_tf2.preprocess(images, n_bits, noise=False).numpy()
  assert x.min() >= -0.5 and x.max() <= 0.5
  k = np.floor(images / 2 ** (8 - n_bits))
  np.testing.assert_allclose(x, (k + 0.5) / 2**n_bits - 0.5, atol=1e-7)
  expected = (k * (256 // 2**n_bits)).astype(np.uint8)
  np.testing.assert_array_equal(glow_tf2.postprocess(x, n_bits).numpy(), expected)


def test_noise_stays_inside_the_bin_and_is_seeded():
  images = helpers.real_images(8, (16, 16, 1))
  x = glow_tf2.preprocess(images, 8, noise=True, seed=[1, 2]).numpy()
  low = images / 256.0 - 0.5
  assert np.all(x >= low) and np.all(x < low + 1 / 256.0)
  np.testing.assert_array_equal(glow_tf2.postprocess(x).numpy(), images)
  again = glow_tf2.preprocess(images, 8, noise=True, seed=[1, 2]).numpy()
  np.testing.assert_array_equal(x, again)


def test_bits_from_log_prob_formula():
  # A density that is uniform on [-0.5, 0.5]^D has log p = 0: exactly n_bits bits per dim.
  np.testing.assert_allclose(losses.bits_from_log_prob(0.0, 3072, 8).numpy(), 8.0)
  log_prob = np.array([-1000.0, 500.0])
  expected = -(log_prob - 12 * math.log(32)) / (12 * math.log(2))
  np.testing.assert_allclose(losses.bits_from_log_prob(log_prob, 12, 5).numpy(), expected)


def test_standard_normal_log_prob():
  eps = np.random.default_rng(0).normal(size=(3, 7)).astype(np.float32)
  expected = (-0.5 * eps**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
  np.testing.assert_allclose(losses.standard_normal_log_prob(eps).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("n_bits,top", [(8, 255), (5, 248), (1, 128)])
def test_postprocess_clips_to_valid_levels(n_bits, top):
  out = glow_tf2.postprocess(np.array([-3.0, -0.5, 0.4999, 0.5, 7.0], np.float32), n_bits).numpy()
  np.testing.assert_array_equal(out, [0, 0, top, top, top])
