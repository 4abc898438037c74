"""glow_tf2.seeds: a seed per row, and the noise of a row drawn from its seed alone."""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2 import seeds


def test_one_seed_gives_row_i_the_seed_plus_i_mod_2_to_the_31():
  np.testing.assert_array_equal(seeds.per_row(5, 3), [5, 6, 7])
  np.testing.assert_array_equal(seeds.per_row(2**31 - 2, 3), [2**31 - 2, 2**31 - 1, 0])
  np.testing.assert_array_equal(seeds.per_row(-1, 2), [2**31 - 1, 0])
  assert seeds.per_row(5, 3).dtype == np.int32 and seeds.per_row(0, 0).shape == (0,)


def test_seeds_per_row_are_taken_as_they_are_or_refused():
  np.testing.assert_array_equal(seeds.per_row([9, -4, 2], 3), [9, -4, 2])
  assert seeds.per_row(np.array([1, 2], np.int64), 2).dtype == np.int32
  with pytest.raises(ValueError, match=r"one int per row \(3\), got int64 \(2,\)"):
    seeds.per_row(np.array([1, 2]), 3)
  with pytest.raises(ValueError, match="one int per row"):
    seeds.per_row([0.5, 1.5], 2)
  with pytest.raises(ValueError, match="int32"):
    seeds.per_row([2**31, 0], 2)


def test_row_i_is_the_stateless_normal_of_its_own_seed_and_salt():
  got = seeds.row_normal([3, 4, 3], 2, 5).numpy()
  assert got.shape == (3, 5) and got.dtype == np.float32
  for i, s in enumerate([3, 4, 3]):
    np.testing.assert_array_equal(got[i], tf.random.stateless_normal([5], seed=[s, 2]).numpy())
  np.testing.assert_array_equal(got[0], got[2])  # one seed, one draw
  assert not np.allclose(got[0], got[1])
  other_salt = seeds.row_normal([3], 4, 5).numpy()[0]
  assert not np.allclose(other_salt, got[0])  # another use of the seed, another draw


def test_a_rows_draw_does_not_depend_on_its_batch_even_in_a_graph():
  row_normal = tf.function(
    lambda s: seeds.row_normal(s, 0, 7),
    input_signature=[tf.TensorSpec([None], tf.int32)],
  )
  batch = row_normal(tf.range(10, 74)).numpy()
  for i in (0, 17, 63):
    np.testing.assert_array_equal(row_normal(tf.constant([10 + i])).numpy()[0], batch[i])
  assert row_normal(tf.zeros([0], tf.int32)).shape == (0, 7)
  # Standard normal: mean about 0 and variance about 1 over 64 x 7 draws.
  assert abs(batch.mean()) < 0.2 and abs(batch.var() - 1) < 0.2
