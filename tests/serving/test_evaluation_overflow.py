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


def _translate_seeded(images, temperature, seed):
  """(x + seed_i) % 256 per row, refusing any batch with a row whose first pixel is 7."""
  del temperature
  x = images.numpy().astype(int)
  if np.any(x[:, 0, 0, 0] == 7):
    raise tf.errors.InvalidArgumentError(
      None, None, f"translate_a2b_sample: `images`: {signature_inputs.OVERFLOW} (not finite)"
    )
  return {"images": tf.constant((x + seed.numpy()[:, None, None, None]) % 256, tf.uint8)}


def test_with_a_seed_per_row_a_row_run_alone_keeps_its_seed_and_no_row_depends_on_the_batch():
  images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * np.ones([1, 2, 2, 1], np.uint8)
  seeds = np.arange(100, 110, dtype=np.int32)
  expected = (2 * np.arange(10) + 100) % 256
  expected[7] = 0  # the overflowing row is black; the rest of its batch, run alone, as ever
  for batch_size in (1, 3, 4, 10):
    got = evaluation.run_batches(
      _translate_seeded, "images", batch_size, images, seeds=seeds, temperature=0.5
    )
    np.testing.assert_array_equal(got[:, 0, 0, 0], expected)


def test_other_refusals_are_not_taken_for_an_overflow():
  def refuse(images, temperature, seed):
    raise tf.errors.InvalidArgumentError(None, None, "`temperature` must be finite")

  with pytest.raises(tf.errors.InvalidArgumentError, match="must be finite"):
    evaluation.run_batches(
      refuse, "images", 4, np.zeros([3, 1, 1, 1], np.uint8), seed=0, temperature=0.5
    )


class _Sampler:
  """sample_a: a sample is its row seed % 256 as a 2x2 image, and a batch holding the value 13
  'overflows'; info() gives the image shape and says the seeds are per row."""

  def sample_a(self, temperature, seed):
    assert seed.shape == temperature.shape  # one seed per row
    values = seed.numpy() % 256
    if np.any(values == 13):
      raise tf.errors.InvalidArgumentError(None, None, f"sample_a: {signature_inputs.OVERFLOW}")
    return {"images": tf.constant(values[:, None, None, None] * np.ones([1, 2, 2, 1]), tf.uint8)}

  def info(self):
    return {"image_shape": tf.constant([2, 2, 1]), "seed_per_row": tf.constant(1)}


def test_an_overflowing_sample_is_black_and_the_others_are_their_own_seeds_draws():
  for batch_size in (4, 6):
    got = sample_quality.draw_samples(
      _Sampler(), "a", n=6, temperature=1.0, seed=10, batch_size=batch_size
    )
    assert got.shape == (6, 2, 2, 1)
    # Sample k from the seed 10 + k; the batch holding seed 13 overflows and is drawn one by
    # one: 13 alone is black, the others are what the batch would have given.
    np.testing.assert_array_equal(got[:, 0, 0, 0], [10, 11, 12, 0, 14, 15])


class _OlderSampler:
  """sample_a of an export with one seed per call: row r of a batch is (seed + r) % 256, and a
  batch holding the value 3 'overflows'; info() has no `seed_per_row`."""

  def sample_a(self, temperature, seed):
    values = (int(seed) + np.arange(int(tf.size(temperature)))) % 256
    if np.any(values == 3):
      raise tf.errors.InvalidArgumentError(None, None, f"sample_a: {signature_inputs.OVERFLOW}")
    return {"images": tf.constant(values[:, None, None, None] * np.ones([1, 2, 2, 1]), tf.uint8)}

  def info(self):
    return {"image_shape": tf.constant([2, 2, 1])}


def test_an_older_export_draws_one_seed_per_batch_and_a_refused_batch_from_row_seeds():
  got = sample_quality.draw_samples(
    _OlderSampler(), "a", n=6, temperature=1.0, seed=0, batch_size=4
  )
  assert got.shape == (6, 2, 2, 1)
  # Batch 0 (seed 0: values 0..3) overflows: its rows come one at a time from row seeds.
  row_seeds = [(0 * sample_quality.ROW_SEEDS + j + 1) % 256 for j in range(4)]
  expected = [0 if v == 3 else v for v in row_seeds] + [1, 2]  # batch 1: seed 1, values 1, 2
  np.testing.assert_array_equal(got[:, 0, 0, 0], expected)
  assert np.all(got[[i for i, v in enumerate(row_seeds) if v == 3]] == 0)
