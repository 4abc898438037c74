"""tf.data pipelines from a `Problem` to per-replica batches of uint8 images.

Order: list files -> shard per input pipeline -> shuffle files -> interleave -> shuffle examples
-> repeat -> batch -> parse (a whole batch at once) -> augment -> prefetch. Dequantization and
scaling belong to the model: batches hold uint8 pixels.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from glow_tf2.input import records
from glow_tf2.input.problems import Problem

# Shuffle buffer: up to this many examples and this many bytes (the original used 4 batches,
# too little to mix shards well at 32x32; at 256x256 the byte cap keeps memory bounded).
SHUFFLE_EXAMPLES = 10_000
SHUFFLE_BYTES = 128 << 20
CYCLE_LENGTH = 8
# --dal shifts images by up to this fraction of width and height (Keras' width/height_shift_range
# in the original): continuous shifts, bilinear, edge pixels repeated (Keras' fill_mode="nearest").
SHIFT_FRACTION = 0.1
# --dal 2 is Glow's CIFAR-10 augmentation (Keras's ImageDataGenerator(width_shift_range=0.1,
# height_shift_range=0.1, horizontal_flip=True, rotation_range=15, zoom_range=0.1,
# shear_range=0.02)): one random affine map per image, bilinear, edges repeated, then a
# horizontal flip half the time.
ROTATION_DEGREES = 15.0
ZOOM_RANGE = 0.1
SHEAR_DEGREES = 0.02
MAX_DAL = 2


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
    dal: data augmentation level, the same random transform for both sides of a pair:
      0 none; 1 shifts each image by a random continuous amount up to 10% of its width and
      height (bilinear, edges repeated: the original's Keras shifts); 2 Glow's CIFAR-10 augmentation (`augment_affine`): shifts up
      to 10%, rotations up to 15 degrees, zoom 0.9-1.1 per axis, shear up to 0.02 degrees and
      horizontal flips.
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
  if not 0 <= dal <= MAX_DAL:
    raise ValueError(f"dal (data augmentation level) must be 0, 1 or 2, got {dal}")
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
    if problem.random_crop:
      ds = _crops(ds, problem, split, seed)
      ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    else:
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
    augment = shift_batch if dal == 1 else affine_batch
    counter = tf.data.Dataset.counter()
    ds = tf.data.Dataset.zip((ds, counter)).map(
      lambda batch, step: augment(batch, tf.stack([tf.constant(seed, tf.int64), step])),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True,
    )
  return ds.prefetch(tf.data.AUTOTUNE)


def _crops(ds: tf.data.Dataset, problem: Problem, split: str, seed: int) -> tf.data.Dataset:
  """Serialized examples of varying sizes -> `problem.image_shape` crops, one at a time: random
  (seeded by the example's position in the stream) for "train", the centre for "test"."""
  h, w, c = problem.image_shape
  paired = problem.paired
  if split != "train":
    return ds.map(
      lambda s: records.parse_and_crop(s, (h, w), c, paired, None),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True,
    )
  return ds.enumerate().map(
    lambda i, s: records.parse_and_crop(
      s, (h, w), c, paired, tf.stack([tf.constant(seed, tf.int64) + (1 << 32), i])
    ),
    num_parallel_calls=tf.data.AUTOTUNE,
    deterministic=True,
  )


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


def shift_batch(batch: dict[str, tf.Tensor], seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """`--dal 1` augmentation of one batch: the same shift for image_a and image_b of each pair.

  Keras's ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1), as the original
  used it: a continuous shift (tx, ty) ~ U(-10%, 10%) of the height and width per image,
  resampled bilinearly with edge pixels repeated and floored to uint8 (`augment_affine` with
  the identity for every other part of the map).
  """
  images = batch["image_a"]
  params = random_shift_params(tf.shape(images)[0], seed)
  matrices = affine_matrices(params, images.shape[1], images.shape[2])
  out = dict(batch)
  for key in ("image_a", "image_b"):
    if key in batch:
      out[key] = augment_affine(batch[key], matrices, params["flip"])
      out[key].set_shape(batch[key].shape)
  return out


def _uniform(n, seed, k: int, low: float, high: float) -> tf.Tensor:
  """U(low, high) float32 [n] from the k-th stream of a stateless seed [2]."""
  return tf.random.stateless_uniform(
    [n], seed=seed + tf.constant([0, k << 40], tf.int64), minval=low, maxval=high
  )


def random_affine_params(n: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """Per-image parameters of `--dal 2`, float32 [n] each, as Keras's random_transform draws them.

  theta (rotation, radians), tx and ty (row and column shifts as fractions of the height and
  width), shear (radians), zx and zy (zoom factors; > 1 shows more of the image), flip (1.0:
  mirror left-right after the affine map, with probability 1/2).
  """
  rad = np.pi / 180.0
  return {
    "theta": _uniform(n, seed, 1, -ROTATION_DEGREES * rad, ROTATION_DEGREES * rad),
    "tx": _uniform(n, seed, 2, -SHIFT_FRACTION, SHIFT_FRACTION),
    "ty": _uniform(n, seed, 3, -SHIFT_FRACTION, SHIFT_FRACTION),
    "shear": _uniform(n, seed, 4, -SHEAR_DEGREES * rad, SHEAR_DEGREES * rad),
    "zx": _uniform(n, seed, 5, 1.0 - ZOOM_RANGE, 1.0 + ZOOM_RANGE),
    "zy": _uniform(n, seed, 6, 1.0 - ZOOM_RANGE, 1.0 + ZOOM_RANGE),
    "flip": tf.cast(_uniform(n, seed, 7, 0.0, 1.0) < 0.5, tf.float32),
  }


def random_shift_params(n: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """Per-image parameters of `--dal 1`: `random_affine_params`' shifts tx and ty (the same
  streams), and the identity for rotation, shear, zoom and flip."""
  zeros, ones = tf.zeros([n]), tf.ones([n])
  return {
    "theta": zeros,
    "tx": _uniform(n, seed, 2, -SHIFT_FRACTION, SHIFT_FRACTION),
    "ty": _uniform(n, seed, 3, -SHIFT_FRACTION, SHIFT_FRACTION),
    "shear": zeros,
    "zx": ones,
    "zy": ones,
    "flip": zeros,
  }


def affine_matrices(params: dict[str, tf.Tensor], height: int, width: int) -> tf.Tensor:
  """Output-to-input maps, float32 [n, 3, 3], on (row, col, 1) pixel coordinates.

  Keras's apply_affine_transform: M = R(theta) S(tx * H, ty * W) Sh(shear) Z(zx, zy), taken
  about the image centre ((H - 1) / 2, (W - 1) / 2): output pixel p samples input M' p with
  M' = C M C^-1. R = [[cos, -sin], [sin, cos]], Sh = [[1, -sin s], [0, cos s]], Z = diag(zx, zy).
  """
  theta, shear = params["theta"], params["shear"]
  zeros, ones = tf.zeros_like(theta), tf.ones_like(theta)

  def mat(rows):
    return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)

  c, s = tf.cos(theta), tf.sin(theta)
  rotation = mat([[c, -s, zeros], [s, c, zeros], [zeros, zeros, ones]])
  tx, ty = params["tx"] * height, params["ty"] * width
  shift = mat([[ones, zeros, tx], [zeros, ones, ty], [zeros, zeros, ones]])
  shear_m = mat(
    [[ones, -tf.sin(shear), zeros], [zeros, tf.cos(shear), zeros], [zeros, zeros, ones]]
  )
  zoom = mat([[params["zx"], zeros, zeros], [zeros, params["zy"], zeros], [zeros, zeros, ones]])
  o_r, o_c = (height - 1) / 2.0, (width - 1) / 2.0
  centre = tf.constant([[1.0, 0.0, o_r], [0.0, 1.0, o_c], [0.0, 0.0, 1.0]])
  uncentre = tf.constant([[1.0, 0.0, -o_r], [0.0, 1.0, -o_c], [0.0, 0.0, 1.0]])
  return centre @ rotation @ shift @ shear_m @ zoom @ uncentre


def warp_images(images: tf.Tensor, matrices: tf.Tensor) -> tf.Tensor:
  """float32 [B, H, W, C] images resampled through [B, 3, 3] (row, col) output-to-input maps:
  bilinear, points outside take the nearest edge pixel (scipy's affine_transform, order 1,
  mode "nearest", as Keras used)."""
  m = matrices
  # TF's projective transform maps output (x = col, y = row) to input (a0 x + a1 y + a2,
  # b0 x + b1 y + b2) in (col, row) order.
  transforms = tf.stack(
    [
      m[:, 1, 1],
      m[:, 1, 0],
      m[:, 1, 2],
      m[:, 0, 1],
      m[:, 0, 0],
      m[:, 0, 2],
      tf.zeros_like(m[:, 0, 0]),
      tf.zeros_like(m[:, 0, 0]),
    ],
    axis=1,
  )
  return tf.raw_ops.ImageProjectiveTransformV3(
    images=images,
    transforms=transforms,
    output_shape=tf.shape(images)[1:3],
    fill_value=0.0,
    interpolation="BILINEAR",
    fill_mode="NEAREST",
  )


def augment_affine(images: tf.Tensor, matrices: tf.Tensor, flip: tf.Tensor) -> tf.Tensor:
  """uint8 [B, H, W, C] through the maps, floored to uint8 (Glow's x_to_uint8), then mirrored
  left-right where flip[i] is 1."""
  warped = warp_images(tf.cast(images, tf.float32), matrices)
  warped = tf.where(flip[:, None, None, None] > 0, tf.reverse(warped, axis=[2]), warped)
  return tf.cast(tf.clip_by_value(tf.floor(warped), 0.0, 255.0), tf.uint8)


def affine_batch(batch: dict[str, tf.Tensor], seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """`--dal 2` augmentation of one batch: the same map and flip for image_a and image_b."""
  images = batch["image_a"]
  params = random_affine_params(tf.shape(images)[0], seed)
  matrices = affine_matrices(params, images.shape[1], images.shape[2])
  out = dict(batch)
  for key in ("image_a", "image_b"):
    if key in batch:
      out[key] = augment_affine(batch[key], matrices, params["flip"])
      out[key].set_shape(batch[key].shape)
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
