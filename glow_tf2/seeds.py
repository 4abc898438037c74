"""One seed per row: how the exported signatures and `ImagePair` draw their noise.

Every random draw of a SavedModel signature (`sample_a`, `sample_b`, `sample_pairs`,
`translate_a2b_sample`, `translate_b2a_sample`) and of `glow_tf2.pair.ImagePair` takes one int32
seed per row, `seeds` `[N]`, and draws row i's standard normal noise from that seed alone:

  n_i = stateless_normal([D], seed=[seeds_i, salt]),

with one salt per use of the noise (`glow_tf2.pair.common.SALT_*`), so two uses of one seed never
share a draw. A row's draw is therefore the same whatever batch it comes in (alone, or row 17 of
64): a client can split or merge requests and get the same images.

A caller holding one seed for a call of N rows gives row i the seed (seed + i) mod 2^31
(`per_row`): the rule of `ImagePair`, `SavedPair`, glow-demo and glow-eval. Seeds s and s + 1 of
one size then share N - 1 rows, shifted by one; a caller making several calls spaces their base
seeds by at least N (glow-eval's draw j of N test images starts at seed + (j + 1) N).
"""

import numpy as np
import tensorflow as tf

SEED_MODULUS = 2**31  # the seeds `per_row` gives are in [0, 2^31): valid int32 stateless seeds


def per_row(seed, n: int) -> np.ndarray:
  """int32 `[n]`: row i's seed, (seed + i) mod 2^31 for an int `seed`, or `seed` itself `[n]`.

  Args:
    seed: an int (the base seed of the call) or n int32 seeds, one per row.
    n: the rows of the call.

  Raises:
    ValueError: per-row seeds of another length, or beyond int32.
  """
  if np.ndim(seed) == 0:
    return ((int(seed) + np.arange(n, dtype=np.int64)) % SEED_MODULUS).astype(np.int32)
  seeds = np.asarray(seed)
  if seeds.shape != (n,) or seeds.dtype.kind not in "iu":
    raise ValueError(f"seeds must be one int per row ({n}), got {seeds.dtype.name} {seeds.shape}")
  info = np.iinfo(np.int32)
  if seeds.size and (seeds.min() < info.min or seeds.max() > info.max):
    raise ValueError("seeds must be int32")
  return seeds.astype(np.int32)


def row_normal(seeds, salt: int, dim: int) -> tf.Tensor:
  """float32 `[N, dim]`: row i is stateless_normal([dim], seed=[seeds_i, salt]).

  `tf.map_fn`, one small op per row: the stateless random ops have no batched kernel of
  per-row seeds (`tf.vectorized_map` falls back to the same loop), and any other construction
  would not be exactly the single row's draw.

  Args:
    seeds: int32 `[N]`.
    salt: the use of the noise (`glow_tf2.pair.common.SALT_*`).
    dim: D, the size of a code.
  """
  seeds = tf.convert_to_tensor(seeds, tf.int32)
  salt = tf.constant(salt, tf.int32)
  return tf.map_fn(
    lambda s: tf.random.stateless_normal([dim], seed=tf.stack([s, salt])),
    seeds,
    fn_output_signature=tf.TensorSpec([dim], tf.float32),
  )
