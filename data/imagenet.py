"""Source `imagenet`: downsampled ImageNet (van den Oord et al.; 32x32 or 64x64) from its
extracted folders `<input>/train_{N}x{N}/*.png` and `<input>/valid_{N}x{N}/*.png`. Stored
unchanged (images must already be N x N), label 0 as the original; 2000 / 80 shards."""

from __future__ import annotations

import os

from glow_tf2.input import image_files as images
from glow_tf2.input import records
from glow_tf2.input.records import DataError
from glow_tf2.input.writer import DatasetSpec
from glow_tf2.input.writer import SplitData

DEFAULT_SHARDS = {"train": 2000, "validation": 80}


def _size(root: str, image_size: int | None) -> int:
  images.require_folder(root)
  if image_size:
    return image_size
  found = [n for n in (32, 64) if os.path.isdir(os.path.join(root, f"train_{n}x{n}"))]
  if len(found) != 1:
    raise DataError(
      f"{root}: {'no train_32x32/ or train_64x64/ folder' if not found else 'both sizes present; give --image_size'}"
    )
  return found[0]


def _records(files, channels, size):
  for path in files:
    image = images.load_image(path, channels)
    if image.shape[:2] != (size, size):
      raise DataError(f"{path}: {image.shape[1]}x{image.shape[0]}, expected {size}x{size}")
    yield records.encode_example(image, 0)


def spec(input, image_size=None, channels=None, shards=None, **_) -> DatasetSpec:
  size = _size(input, image_size)
  channels = channels or 3
  data = {}
  for split, prefix in (("train", "train"), ("validation", "valid")):
    folder = images.require_folder(
      os.path.join(input, f"{prefix}_{size}x{size}"), f"ImageNet {prefix} folder"
    )
    files = images.list_images(folder)
    if not files:
      raise DataError(f"{folder}: empty folder (no PNG images)")
    data[split] = SplitData(
      len(files), _records(images.shuffled(files), channels, size), shards or DEFAULT_SHARDS[split]
    )
  meta = {"source": "imagenet", "paired": False, "n_classes": 0, "channels": channels}
  return DatasetSpec(splits=data, res_log2s=(records.resolution_log2(size),), meta=meta)
