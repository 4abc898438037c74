"""Source `imagenet_full`: full-size ImageNet (ILSVRC-2012) as Glow's generate.py `dump_imagenet`
wrote it, from the TFRecords of TensorFlow's `build_imagenet_data.py`: `<input>/train-*-of-*`
(1024 files) and `<input>/validation-*-of-*` (128), Examples holding `image/encoded` (a JPEG)
and `image/class/label` (1..1000).

Each image: centre crop to a square, bilinear resize to `--image_size` (default 256, the
original's) as TF1's `resize_images` did (no half-pixel centres, no anti-aliasing), then every
resolution down to 4x4, each the 2x2 mean of the float image above, floored to uint8. Label =
class - 1 (0..999), so `--problem=imagenet` is a 1000-class set; 2000 / 80 shards.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import tensorflow as tf

from glow_tf2.input import image_files as images
from glow_tf2.input import records
from glow_tf2.input.records import DataError
from glow_tf2.input.writer import DatasetSpec
from glow_tf2.input.writer import SplitData

DEFAULT_SIZE = 256
DEFAULT_SHARDS = {"train": 2000, "validation": 80}
N_CLASSES = 1000
FEATURES = {
  "image/encoded": tf.io.FixedLenFeature([], tf.string, default_value=""),
  "image/class/label": tf.io.FixedLenFeature([1], tf.int64, default_value=[-1]),
}


def find_files(root: str, split: str) -> list[str]:
  files = sorted(glob.glob(os.path.join(glob.escape(root), f"{split}-*-of-*")))
  if not files:
    raise DataError(f"{root}: no {split}-NNNNN-of-NNNNN ImageNet TFRecord files")
  return files


def levels(image: np.ndarray, size: int) -> list[np.ndarray]:
  """uint8 [H, W, 3] -> [size, size/2, ..., 4] uint8 images, as dump_imagenet made them."""
  side = min(image.shape[:2])
  top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
  square = image[top : top + side, left : left + side]
  x = tf.compat.v1.image.resize_bilinear(
    square[None], [size, size], align_corners=False, half_pixel_centers=False
  )[0].numpy()
  x = x.astype(np.float32)
  out = []
  while True:
    out.append(np.clip(np.floor(x), 0, 255).astype(np.uint8))
    if x.shape[0] <= 4:
      return out
    x = (x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2]) * 0.25


def _examples(files: list[str]):
  """(path, uint8 image, label 0..999) of every Example, files in a seeded random order."""
  for path in images.shuffled(files):
    try:
      for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
        parsed = tf.io.parse_single_example(raw, FEATURES)
        label = int(parsed["image/class/label"][0]) - 1
        if not 0 <= label < N_CLASSES:
          raise DataError(f"{path}: image/class/label {label + 1} outside 1..{N_CLASSES}")
        image = tf.io.decode_image(
          parsed["image/encoded"], channels=3, expand_animations=False
        ).numpy()
        yield path, image, label
    except tf.errors.OpError as error:
      detail = error.message.splitlines()[0] if error.message else type(error).__name__
      raise DataError(f"{path}: unreadable ImageNet TFRecord ({detail})") from None


def _records(files, size, res_log2s, channels):
  for path, image, label in _examples(files):
    if channels == 1:
      image = images.to_grey(image)
    yield {
      res: records.encode_example(level, label)
      for res, level in zip(res_log2s, levels(image, size))
    }


def spec(input, image_size=None, channels=None, shards=None, **_) -> DatasetSpec:
  images.require_folder(input)
  size = image_size or DEFAULT_SIZE
  top = records.resolution_log2(size)
  if top < 2:
    raise ValueError(f"--image_size={size}: must be at least 4")
  res_log2s = tuple(range(top, 1, -1))
  channels = channels or 3
  data = {}
  for split in ("train", "validation"):
    files = find_files(input, split)
    n = sum(records.scan_file(f).n_records for f in files)
    data[split] = SplitData(
      n, _records(files, size, res_log2s, channels), shards or DEFAULT_SHARDS[split]
    )
  meta = {"source": "imagenet_full", "paired": False, "n_classes": N_CLASSES, "channels": channels}
  return DatasetSpec(splits=data, res_log2s=res_log2s, meta=meta)
