"""Source `lsun`: an LSUN category as exported flat by the LSUN tools
(`python data.py export <db> --out_dir <dir> --flat`): `<input>/<category>_train/*.webp` and
`<input>/<category>_val/*.webp`. Centre-cropped and box-downsampled to `--image_size`; label 0;
2560 / 1 shards as the original. `--category` picks one when several are present."""

from __future__ import annotations

import glob
import os

from glow_tf2.input import image_files as images
from glow_tf2.input import records
from glow_tf2.input.records import DataError
from glow_tf2.input.writer import DatasetSpec
from glow_tf2.input.writer import SplitData

DEFAULT_SHARDS = {"train": 2560, "validation": 1}


def find_category(root: str, category: str | None) -> str:
  images.require_folder(root)
  if category:
    return category
  found = sorted(
    os.path.basename(p)[: -len("_train")]
    for p in glob.glob(os.path.join(glob.escape(root), "*_train"))
  )
  if len(found) != 1:
    raise DataError(
      f"{root}: {'no <category>_train folder' if not found else 'several categories ' + str(found) + '; give --category'}"
    )
  return found[0]


def _records(files, channels, check):
  for path in files:
    yield records.encode_example(check(images.load_image(path, channels), path), 0)


def spec(input, image_size=None, channels=None, shards=None, category=None, **_) -> DatasetSpec:
  category = find_category(input, category)
  split_files = {}
  for split, suffix in (("train", "_train"), ("validation", "_val")):
    folder = images.require_folder(
      os.path.join(input, category + suffix), f"LSUN {category}{suffix} folder"
    )
    files = images.list_images(folder)
    if not files:
      raise DataError(f"{folder}: empty folder (no images)")
    split_files[split] = files
  channels = channels or 3
  size = images.peek_size(split_files["train"][:1], image_size)
  check = images.SizeChecker(image_size)
  data = {
    split: SplitData(
      len(f), _records(images.shuffled(f), channels, check), shards or DEFAULT_SHARDS[split]
    )
    for split, f in split_files.items()
  }
  meta = {
    "source": "lsun",
    "category": category,
    "paired": False,
    "n_classes": 0,
    "channels": channels,
  }
  return DatasetSpec(splits=data, res_log2s=(records.resolution_log2(size),), meta=meta)
