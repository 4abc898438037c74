"""glow-eval measures a pair whose translations overflow: the module refuses a batch with an
overflowed row (signature_inputs.OVERFLOW), and evaluation runs that batch again row by row,
each overflowing row a black image, the others as the module makes them."""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.serving import evaluation
from glow_tf2.serving import sample_quality
from glow_tf2.serving import signature_inputs


def _translate(images, temperature, seed):
  """255 - x, refusing any batch with a row whose first pixel is 7 (it 'overflows')."""
  del temperature, seed
  x = images.numpy()
  if np.any(x[:, 0, 0, 0] == 7):
    raise tf.errors.InvalidArgumentError(
      None, None, f"translate_a2b: `images`: {signature_inputs.OVERFLOW} (not finite)"
    )
  return {"images": tf.constant(255 - x)}


def test_rows_that_overflow_come_out_black_and_the_rest_translated():
  images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * np.ones([1, 2, 2, 1], np.uint8)
  got = evaluation.run_batches(_translate, "images", 4, images, seed=0, temperature=0.5)
  expected = 255 - images
  expected[7] = 0
  np.testing.assert_array_equal(got, expected)


def test_other_refusals_are_not_taken_for_an_overflow():
  def refuse(images, temperature, seed):
    raise tf.errors.InvalidArgumentError(None, None, "`temperature` must be finite")

  with pytest.raises(tf.errors.InvalidArgumentError, match="must be finite"):
    evaluation.run_batches(
      refuse, "images", 4, np.zeros([3, 1, 1, 1], np.uint8), seed=0, temperature=0.5
    )


class _Sampler:
  """sample_a: row r of a batch is (seed + r) % 256 as a 2x2 image, and a batch holding the
  value 3 'overflows'; info() gives the image shape."""

  def sample_a(self, temperature, seed):
    values = (int(seed) + np.arange(int(tf.size(temperature)))) % 256
    if np.any(values == 3):
      raise tf.errors.InvalidArgumentError(None, None, f"sample_a: {signature_inputs.OVERFLOW}")
    return {"images": tf.constant(values[:, None, None, None] * np.ones([1, 2, 2, 1]), tf.uint8)}

  def info(self):
    return {"image_shape": tf.constant([2, 2, 1])}


def test_an_overflowing_sample_is_black_and_its_batch_is_drawn_one_by_one():
  got = sample_quality.draw_samples(_Sampler(), "a", n=6, temperature=1.0, seed=0, batch_size=4)
  assert got.shape == (6, 2, 2, 1)
  # Batch 0 (seed 0: values 0..3) overflows: its rows come one at a time from row seeds.
  row_seeds = [(0 * sample_quality.ROW_SEEDS + j + 1) % 256 for j in range(4)]
  expected = [0 if v == 3 else v for v in row_seeds] + [1, 2]  # batch 1: seed 1, values 1, 2
  np.testing.assert_array_equal(got[:, 0, 0, 0], expected)
  assert np.all(got[[i for i, v in enumerate(row_seeds) if v == 3]] == 0)
