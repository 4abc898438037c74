"""The named random streams: distinct, deterministic, and a replica's noise is its rows' noise."""

import itertools

import numpy as np
import tensorflow as tf

from glow_tf2 import losses
from glow_tf2.train import streams
from glow_tf2.train.streams import Stream


def test_every_stream_side_and_seed_has_its_own_seed():
  seeds = {}
  for run_seed, stream, side, counter in itertools.product(range(3), Stream, range(2), range(3)):
    value = tuple(streams.seed(run_seed, stream, side, counter).numpy().tolist())
    assert value not in seeds, (value, seeds.get(value), (run_seed, stream, side, counter))
    seeds[value] = (run_seed, stream, side, counter)
  # Deterministic: the same name gives the same seed, in any order of calls.
  assert streams.seed(2, Stream.EVAL_NOISE, 1, 5).numpy().tolist() == [2 * 64 + 16 + 1, 5]
  assert streams.seed(2, Stream.SAMPLE_LATENT, 1, 0).numpy().tolist() == [2, 7001]


def test_noise_of_an_example_is_a_function_of_its_global_row():
  images = np.random.default_rng(0).integers(0, 256, (8, 4, 4, 1), dtype=np.uint8)
  seed = streams.seed(0, Stream.TRAIN_NOISE, 0, 7)
  whole = losses.dequantize_with_noise(images, 8, seed).numpy()
  # Two replicas of 4 rows each take their own rows of the global batch's noise.
  halves = [
    losses.dequantize_with_noise(images[r * 4 : (r + 1) * 4], 8, seed, r * 4, 8).numpy()
    for r in range(2)
  ]
  np.testing.assert_array_equal(np.concatenate(halves), whole)
  # The formula, independently: k / 256 - 0.5 + u / 256 with u the stateless uniform draw.
  u = tf.random.stateless_uniform([8, 4, 4, 1], seed).numpy()
  np.testing.assert_allclose(whole, images / 256.0 - 0.5 + u / 256.0, atol=1e-6)
  other = losses.dequantize_with_noise(images, 8, streams.seed(0, Stream.TRAIN_NOISE, 1, 7))
  assert np.mean(other.numpy() != whole) > 0.9  # side B draws other noise
