"""The translation distance stays finite, and large, when a decoder returns NaN or inf pixels."""

import numpy as np
import tensorflow as tf

from glow_tf2 import losses


class _FixedDecoder:
  """Stands in for a Glow whose decoder returns the given pixels whatever the code."""

  def __init__(self, pixels):
    self.pixels = tf.constant(pixels, tf.float32)

  def decode(self, eps, labels=None):
    del eps, labels
    return self.pixels, tf.zeros([self.pixels.shape[0]])


def test_nan_and_inf_pixels_count_as_the_clip_bound():
  target = np.zeros([2, 2, 2, 1], np.float32)
  decoded = np.array([[[[np.nan], [0.25]], [[np.inf], [-np.inf]]]] * 2, np.float32)
  glow = _FixedDecoder(decoded)
  eps = tf.zeros([2, 4])
  got = losses.translation_distance(glow, glow, eps, eps, target, target, "l2").numpy()
  # Per image: pixels (1, 0.25, 1, -1) against 0 -> mean of squares, once per direction.
  expected = 2 * np.mean([1.0, 0.0625, 1.0, 1.0])
  np.testing.assert_allclose(got, [expected, expected], rtol=1e-6)


def test_finite_pixels_inside_the_bound_are_untouched():
  rng = np.random.default_rng(0)
  decoded = rng.uniform(-0.5, 0.5, [3, 4, 4, 1]).astype(np.float32)
  target = rng.uniform(-0.5, 0.5, [3, 4, 4, 1]).astype(np.float32)
  glow = _FixedDecoder(decoded)
  eps = tf.zeros([3, 16])
  got = losses.translation_distance(glow, glow, eps, eps, target, target, "l1").numpy()
  expected = 2 * np.abs(decoded - target).reshape(3, -1).mean(axis=1)
  np.testing.assert_allclose(got, expected, rtol=1e-6)
