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


class _ExpDecoder:
  """A decoder with one weight whose pixels overflow for a code near the clip (exp(20 * 5) is
  inf in float32), as a sharp Glow's inverse does for a foreign code."""

  def __init__(self):
    self.w = tf.Variable(0.1)

  def decode(self, eps, labels=None):
    del labels
    x = self.w * tf.exp(20.0 * eps)
    return tf.reshape(x, [-1, 2, 2, 1]), tf.zeros([tf.shape(eps)[0]])


def _gradient(glow, eps, target, keep=None):
  with tf.GradientTape() as tape:
    d = losses.translation_distance(glow, glow, eps, eps, target, target, "l2", keep=keep)
    loss = tf.reduce_sum(d)
  return d.numpy(), tape.gradient(loss, glow.w).numpy()


def test_rows_that_overflow_are_left_out_and_the_rest_still_train():
  glow = _ExpDecoder()
  eps = tf.constant([[0.01] * 4, [5.0] * 4, [-0.02] * 4])
  target = np.full([3, 2, 2, 1], 0.3, np.float32)
  keep = losses.decodable_rows(glow, eps)
  np.testing.assert_array_equal(keep.numpy(), [True, False, True])
  # Unmasked, the overflowing row's backward pass is 0 * inf: NaN for the whole gradient.
  _, poisoned = _gradient(glow, eps, target)
  assert np.isnan(poisoned)
  d, grad = _gradient(glow, eps, target, keep=(keep, keep))
  assert d[1] == 0.0 and np.all(np.isfinite(d))
  # The kept rows' distance and gradient are those of the good rows alone.
  good = tf.gather(eps, [0, 2])
  d_good, grad_good = _gradient(glow, good, target[[0, 2]])
  np.testing.assert_allclose(d[[0, 2]], d_good, rtol=1e-6)
  np.testing.assert_allclose(grad, grad_good, rtol=1e-5)
  # By hand: pixels w * exp(20 e) against 0.3, mean of squares, both directions.
  pixels = 0.1 * np.exp(20.0 * np.array([0.01, -0.02], np.float32))
  np.testing.assert_allclose(d_good, 2 * (pixels - 0.3) ** 2, rtol=1e-5)
