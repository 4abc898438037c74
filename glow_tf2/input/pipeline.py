"""tf.data pipelines from a `Problem` to per-replica batches of uint8 images.

Order: list files -> shard per input pipeline -> shuffle files -> interleave -> shuffle examples
-> repeat -> batch -> parse (a whole batch at once) -> augment -> prefetch. Dequantization and
scaling belong to the model: batches hold uint8 pixels.
"""

from __future__ import annotations

import tensorflow as tf

from glow_tf2.input import records
from glow_tf2.input.problems import Problem

# Shuffle buffer: up to this many examples and this many bytes (the original used 4 batches,
# too little to mix shards well at 32x32; at 256x256 the byte cap keeps memory bounded).
SHUFFLE_EXAMPLES = 10_000
SHUFFLE_BYTES = 128 << 20
CYCLE_LENGTH = 8
# --dal shifts images by up to this fraction of width and height (Keras' width/height_shift_range
# in the original), here in whole pixels with edge pixels repeated (Keras' fill_mode="nearest").
SHIFT_FRACTION = 0.1


def make_dataset(
  problem: Problem,
  split: str,
  batch_size: int,
  *,
  shuffle: bool = True,
  repeat: bool = True,
  dal: int = 0,
  seed: int = 0,
  input_context: tf.distribute.InputContext | None = None,
  drop_remainder: bool | None = None,
  shuffle_buffer: int | None = None,
) -> tf.data.Dataset:
  """Batches of one split of `problem`.

  Args:
    problem: from `problems.get_problem`.
    split: "train" or "test".
    batch_size: examples per batch of THIS input pipeline (the per-replica batch).
    shuffle: shuffle files and examples (seeded).
    repeat: repeat forever.
    dal: data augmentation level; >= 1 shifts each image (both sides of a pair alike) by a
      random whole number of pixels up to 10% of its width and height, edges repeated.
    seed: makes order and augmentation reproducible.
    input_context: from `strategy.distribute_datasets_from_function`; each input pipeline
      reads its own files (or, with fewer files than pipelines, its own examples).
    drop_remainder: drop a last partial batch; default: when repeating (static batch shape).
    shuffle_buffer: examples in the shuffle buffer; default: 10,000 or 128 MiB of images,
      whichever is smaller, but at least 4 batches.

  Returns:
    A dataset of dicts: "image_a" uint8 [B, H, W, C], "image_b" (paired problems only),
    "label" int32 [B], and "attr" int32 [B, 40] for sets with attributes.
  """
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  if drop_remainder is None:
    drop_remainder = repeat
  n_pipelines = input_context.num_input_pipelines if input_context else 1
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  # Distinct, reproducible randomness per input pipeline.
  seed = int(seed) * 1009 + pipeline_id
  if shuffle_buffer is None:
    h, w, c = problem.stored_shape or problem.image_shape
    example_bytes = h * w * c * (2 if problem.paired else 1)
    shuffle_buffer = max(4 * batch_size, min(SHUFFLE_EXAMPLES, SHUFFLE_BYTES // example_bytes))

  if problem.is_tfds:
    ds = _tfds_examples(problem, split, shuffle, seed, input_context)
    if shuffle:
      ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
      ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)
  else:
    files = list(problem.files(split))
    ds = tf.data.Dataset.from_tensor_slices(files)
    shard_files = n_pipelines > 1 and len(files) >= n_pipelines
    if shard_files:
      ds = ds.shard(n_pipelines, pipeline_id)
    if shuffle:
      ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
      lambda f: tf.data.TFRecordDataset(f, buffer_size=1 << 20),
      cycle_length=min(CYCLE_LENGTH, len(files)),
      block_length=1,
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True,
    )
    if n_pipelines > 1 and not shard_files:
      ds = ds.shard(n_pipelines, pipeline_id)
    if shuffle:
      ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
      ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    shape = problem.stored_shape or problem.image_shape
    paired, has_attr = problem.paired, problem.has_attr
    ds = ds.map(
      lambda s: records.parse_batch(s, shape, paired, has_attr),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True,
    )
  if problem.stored_shape:
    ds = ds.map(
      lambda batch: crop_batch(batch, problem.image_shape[:2]),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True,
    )
  if dal:
    counter = tf.data.Dataset.counter()
    ds = tf.data.Dataset.zip((ds, counter)).map(
      lambda batch, step: shift_batch(batch, tf.stack([tf.constant(seed, tf.int64), step])),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True,
    )
  return ds.prefetch(tf.data.AUTOTUNE)


def crop_batch(batch: dict[str, tf.Tensor], size: tuple[int, int]) -> dict[str, tf.Tensor]:
  """The centre `size` (H, W) of every image of a batch; an odd margin leaves its extra pixel
  at the bottom and right, as `glow_tf2_data.idx.pad_to` adds it there."""
  out = dict(batch)
  for key in ("image_a", "image_b"):
    if key in batch:
      stored = batch[key].shape
      top, left = (stored[1] - size[0]) // 2, (stored[2] - size[1]) // 2
      out[key] = batch[key][:, top : top + size[0], left : left + size[1], :]
  return out


def random_shifts(
  n: tf.Tensor, height: int, width: int, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
  """Per-image shifts (dy, dx), int32 [n] each, uniform in [-10%, +10%] of the size (whole pixels)."""
  max_dy = int(round(SHIFT_FRACTION * height))
  max_dx = int(round(SHIFT_FRACTION * width))
  dy = tf.random.stateless_uniform(
    [n], seed=seed, minval=-max_dy, maxval=max_dy + 1, dtype=tf.int32
  )
  dx = tf.random.stateless_uniform(
    [n],
    seed=seed + tf.constant([0, 1 << 40], tf.int64),
    minval=-max_dx,
    maxval=max_dx + 1,
    dtype=tf.int32,
  )
  return dy, dx


def shift_images(images: tf.Tensor, dy: tf.Tensor, dx: tf.Tensor) -> tf.Tensor:
  """Shifts each image of [B, H, W, C] by (dy[i], dx[i]) pixels, repeating edge pixels.

  Output pixel (y, x) of image i is input pixel (clip(y - dy[i]), clip(x - dx[i])).
  """
  height, width = images.shape[1], images.shape[2]
  rows = tf.clip_by_value(tf.range(height)[None, :] - dy[:, None], 0, height - 1)
  cols = tf.clip_by_value(tf.range(width)[None, :] - dx[:, None], 0, width - 1)
  images = tf.gather(images, rows, axis=1, batch_dims=1)
  return tf.gather(images, cols, axis=2, batch_dims=1)


def shift_batch(batch: dict[str, tf.Tensor], seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """`--dal` augmentation of one batch: the same shift for image_a and image_b of each pair."""
  images = batch["image_a"]
  dy, dx = random_shifts(tf.shape(images)[0], images.shape[1], images.shape[2], seed)
  out = dict(batch)
  for key in ("image_a", "image_b"):
    if key in batch:
      out[key] = shift_images(batch[key], dy, dx)
  return out


def _tfds_examples(
  problem: Problem, split: str, shuffle: bool, seed: int, input_context
) -> tf.data.Dataset:
  import tensorflow_datasets as tfds

  builder = tfds.builder(problem.tfds_name, data_dir=problem.root, try_gcs=False)
  tfds_split = problem.tfds_splits[0] if split == "train" else problem.tfds_splits[1]
  n_pipelines = input_context.num_input_pipelines if input_context else 1
  # TFDS shards by file; with fewer files than pipelines, shard the examples instead.
  by_files = n_pipelines > 1 and builder.info.splits[tfds_split].num_shards >= n_pipelines
  read_config = tfds.ReadConfig(
    input_context=input_context if by_files else None, shuffle_seed=seed, try_autocache=False
  )
  ds = builder.as_dataset(split=tfds_split, shuffle_files=shuffle, read_config=read_config)
  if n_pipelines > 1 and not by_files:
    ds = ds.shard(n_pipelines, input_context.input_pipeline_id)
  image_key, label_key = problem.tfds_image_key, problem.tfds_label_key
  shape = problem.stored_shape or problem.image_shape

  def to_dict(example):
    image = tf.ensure_shape(example[image_key], shape)
    label = tf.cast(example[label_key], tf.int32) if label_key else tf.constant(0, tf.int32)
    return {"image_a": image, "label": label}

  return ds.map(to_dict, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
