"""Source `lsun_realnvp`: an LSUN category prepared as Glow's `lsun.py --realnvp` did (RealNVP's
LSUN preprocessing), from the same flat export as source `lsun` (`<input>/<category>_train/`,
`<input>/<category>_val/`).

Every image is scaled so that its SHORT side is 96, keeping its aspect ratio and not cropped:
skimage's `pyramid_reduce` by `min(H, W) / 96` (Gaussian anti-aliasing, bilinear), then
`uint8(255 * x)` (truncation, as the original). Files are named `-r06-` (the original's
int(log2 96)); label 0; 2560 / 1 shards. Training reads random 64x64 crops, test the centre
crop: `--problem=lsun_realnvp_<category>`.
"""

from __future__ import annotations

import os

import numpy as np
import skimage.transform

from glow_tf2.input import image_files as images
from glow_tf2.input import records
from glow_tf2.input.records import DataError
from glow_tf2.input.writer import DatasetSpec
from glow_tf2.input.writer import SplitData
from glow_tf2_data import lsun

SHORT_SIDE = 96
RES_LOG2 = 6  # the original named the files after int(log2(96))
DEFAULT_SHARDS = lsun.DEFAULT_SHARDS


def reduce_to_short_side(image: np.ndarray, path: str, side: int = SHORT_SIDE) -> np.ndarray:
  """uint8 [H, W, C] -> uint8 [~H * s, ~W * s, C] with s = side / min(H, W) (pyramid_reduce)."""
  rows, cols = image.shape[:2]
  if min(rows, cols) < side:
    raise DataError(f"{path}: {cols}x{rows}, short side below the {side} px realnvp sets store")
  downscale = min(rows / side, cols / side)
  if downscale == 1.0:
    return image
  reduced = skimage.transform.pyramid_reduce(image, downscale=downscale, channel_axis=-1)
  return (reduced * 255.0).astype(np.uint8)


def _records(files, channels):
  for path in files:
    image = reduce_to_short_side(images.load_image(path, channels), path)
    yield records.encode_example(np.ascontiguousarray(image), 0)


def spec(input, image_size=None, channels=None, shards=None, category=None, **_) -> DatasetSpec:
  if image_size not in (None, SHORT_SIDE):
    raise ValueError(
      f"--image_size={image_size}: lsun_realnvp stores the short side at {SHORT_SIDE} "
      "(the crop size is chosen when reading)"
    )
  category = lsun.find_category(input, category)
  channels = channels or 3
  data = {}
  for split, suffix in (("train", "_train"), ("validation", "_val")):
    folder = images.require_folder(
      os.path.join(input, category + suffix), f"LSUN {category}{suffix} folder"
    )
    files = images.list_images(folder)
    if not files:
      raise DataError(f"{folder}: empty folder (no images)")
    data[split] = SplitData(
      len(files), _records(images.shuffled(files), channels), shards or DEFAULT_SHARDS[split]
    )
  meta = {
    "source": "lsun_realnvp",
    "category": category,
    "paired": False,
    "n_classes": 0,
    "channels": channels,
    "short_side": SHORT_SIDE,
  }
  return DatasetSpec(splits=data, res_log2s=(RES_LOG2,), meta=meta)
