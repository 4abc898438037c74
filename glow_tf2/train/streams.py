"""The named random streams of a run: every random number of training comes from one of these.

Each draw is stateless (`tf.random.stateless_*`) with the seed

    noise streams:  [run_seed * 64 + stream + side, counter]
    SAMPLE_LATENT:  [run_seed, 7000 + side + 16 * counter]

so a draw is a function of (run seed, stream, side, counter) only: nothing depends on the order
of calls, the number of replicas or a restart. The counters are:

  TRAIN_NOISE  dequantisation noise of the training batch: the global step; each replica slices
               its rows out of the global batch's noise (`losses.dequantize_with_noise`), so the
               noise of an example is a function of (seed, step, global row) and one replica
               trains as two do.
  EVAL_NOISE   dequantisation noise of validation: the test batch's index; each replica slices
               its rows out of the global test batch's noise, as in training.
  INIT_NOISE   dequantisation noise of the data-dependent init batch: 0.
  TRAIN_GAUSSIAN the Gaussian noise of a noise-augmented model (`GlowConfig.noise_sigma`): the
               global step, sliced per replica like TRAIN_NOISE.
  SAMPLE_LATENT the latent of the sample grids: 0, the same at every epoch so grids compare.

A variationally dequantised model (`GlowConfig.dequantization`) draws its eps ~ N(0, I) in
training and validation from `variational(seed)` of the TRAIN_NOISE or EVAL_NOISE seed: the
same counters, another stream (the 64 keys of a run seed are all taken), and independent of
the uniform noise validation still draws for the uniform bits/dim. A noise-augmented model's
validation draws its Gaussian noise from `gaussian(seed)` of the EVAL_NOISE seed likewise.

The stream bases keep the integers runs used before they had names, so old runs reproduce.
"""

import enum

import tensorflow as tf

# Noise streams are spaced by this per run seed, so two seeds never share a stream.
_STREAMS_PER_SEED = 64
# Side indices a stream has room for (its base + 0 ... base + 15).
_SIDES = 16


class Stream(enum.IntEnum):
  """A named stream; the value is its base (sides A and B are base + 0 and base + 1)."""

  TRAIN_NOISE = 0
  EVAL_NOISE = 16
  INIT_NOISE = 32
  TRAIN_GAUSSIAN = 48
  SAMPLE_LATENT = 7000


def seed(run_seed: int, stream: Stream, side: int, counter) -> tf.Tensor:
  """The stateless seed int64 `[2]` of a stream's draw number `counter` for side 0 (A) or 1 (B)."""
  if not 0 <= side < _SIDES:
    raise ValueError(f"side index must be in [0, {_SIDES}), got {side}")
  if stream is Stream.SAMPLE_LATENT:
    # [seed, 7000 + side] at counter 0 (what sample grids always used); sides < 16 keep the
    # counters of two sides apart.
    second = int(stream) + side + _SIDES * tf.cast(counter, tf.int64)
    return tf.stack([tf.constant(run_seed, tf.int64), second])
  key = run_seed * _STREAMS_PER_SEED + int(stream) + side
  return tf.stack([tf.constant(key, tf.int64), tf.cast(counter, tf.int64)])


def variational(noise_seed) -> tf.Tensor:
  """The seed `[2]` of a variational dequantizer's eps, derived from a noise stream's seed."""
  return tf.random.experimental.stateless_fold_in(noise_seed, 1)


def gaussian(noise_seed) -> tf.Tensor:
  """The seed `[2]` of validation's Gaussian noise for a noise-augmented model, derived from
  the EVAL_NOISE seed of the same test batch (as `variational` is)."""
  return tf.random.experimental.stateless_fold_in(noise_seed, 2)
