"""Source `celeba`: CelebA-HQ from its extracted folder: the images (sorted by the number in
their names) and the 40-attribute annotation file (`list_attr_celeba.txt` or
`CelebAMask-HQ-attribute-anno.txt`, in the folder or its parent: a count line, a line of 40
attribute names, then `<file> v1 .. v40` with values -1/1 or 0/1, stored as 0/1).

As the original generator: the first 10% (3,000 of 30,000) are `validation`, the rest `train`;
every resolution from `--image_size` (default: the images' size) down to 4 is written, each a
2x2 box downsampling of the one above; 120 / 40 shards.
"""

from __future__ import annotations

import os

import numpy as np

from glow_tf2.input import image_files as images
from glow_tf2.input import records
from glow_tf2.input.records import DataError
from glow_tf2.input.writer import DatasetSpec
from glow_tf2.input.writer import SplitData

ATTRIBUTE_FILES = ("list_attr_celeba.txt", "CelebAMask-HQ-attribute-anno.txt")
DEFAULT_SHARDS = {"train": 120, "validation": 40}


def find_attribute_file(folder: str) -> str:
  for where in (folder, os.path.dirname(os.path.abspath(folder))):
    for name in ATTRIBUTE_FILES:
      path = os.path.join(where, name)
      if os.path.isfile(path):
        return path
  raise DataError(
    f"{folder}: no attribute file ({' or '.join(ATTRIBUTE_FILES)}) here or in the parent folder"
  )


def read_attributes(path: str) -> dict[str, np.ndarray]:
  """{file name: int64 [40] of 0/1}."""
  with open(path) as handle:
    lines = handle.read().splitlines()
  if len(lines) < 2:
    raise DataError(f"{path}: too short for an attribute file")
  names = lines[1].split()
  if len(names) != records.N_ATTR:
    raise DataError(f"{path}: line 2 names {len(names)} attributes, expected {records.N_ATTR}")
  out = {}
  for number, line in enumerate(lines[2:], start=3):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != records.N_ATTR + 1:
      raise DataError(
        f"{path}: line {number} has {len(fields) - 1} values, expected {records.N_ATTR}"
      )
    try:
      values = np.asarray([int(v) for v in fields[1:]], np.int64)
    except ValueError:
      raise DataError(f"{path}: line {number} holds a non-integer value") from None
    out[fields[0]] = (values > 0).astype(np.int64)
  return out


def _records(files, attrs, channels, check, res_log2s):
  for path in files:
    image = check(images.load_image(path, channels), path)
    levels = images.pyramid(image, smallest=2 ** min(res_log2s))
    attr = attrs[os.path.basename(path)]
    yield {res: records.encode_example(level, 0, attr) for res, level in zip(res_log2s, levels)}


def spec(input, image_size=None, channels=None, shards=None, **_) -> DatasetSpec:
  images.require_folder(input)
  files = images.list_images(input)
  if not files:
    raise DataError(f"{input}: empty folder (no CelebA-HQ images)")
  attr_path = find_attribute_file(input)
  attrs = read_attributes(attr_path)
  for path in files:
    if os.path.basename(path) not in attrs:
      raise DataError(f"{attr_path}: no attributes for {os.path.basename(path)}")
  if len(files) < 2:
    raise DataError(f"{input}: only one image, cannot hold out a validation split")
  channels = channels or 3
  size = images.peek_size(files[:1], image_size)
  top = records.resolution_log2(size)
  res_log2s = tuple(range(top, 1, -1))  # size .. 4
  n_val = max(1, len(files) // 10)
  check = images.SizeChecker(image_size)
  split_files = {"train": files[n_val:], "validation": files[:n_val]}
  data = {
    split: SplitData(
      len(f),
      _records(images.shuffled(f), attrs, channels, check, res_log2s),
      shards or DEFAULT_SHARDS[split],
    )
    for split, f in split_files.items()
  }
  meta = {"source": "celeba", "paired": False, "n_classes": 0, "channels": channels, "attr": True}
  return DatasetSpec(splits=data, res_log2s=res_log2s, meta=meta)
