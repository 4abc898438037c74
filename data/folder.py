"""Source `folder`: an image folder, one subfolder per class giving labels.

Layouts: `<root>/{train,validation}/...` (`val` or `test` also name the validation split), or
`<root>/...` alone, in which case a seeded 10% of the images (at least one) is held out as
validation. Inside a split, images directly (label 0, no classes) or one subfolder per class
(labels by sorted class name, taken from the training split).
"""

from __future__ import annotations

import os

import numpy as np

from glow_tf2.input import image_files as images
from glow_tf2.input import records
from glow_tf2.input.records import DataError
from glow_tf2.input.writer import DatasetSpec
from glow_tf2.input.writer import SplitData

VALIDATION_NAMES = ("validation", "val", "test")
DEFAULT_SHARDS = {"train": 64, "validation": 8}


def _collect(folder: str) -> tuple[list[str], list[str]]:
  """(class names, files) of one folder: files directly, or in class subfolders."""
  subdirs = sorted(
    d
    for d in os.listdir(folder)
    if os.path.isdir(os.path.join(folder, d)) and not d.startswith(".")
  )
  direct = images.list_images(folder)
  classes = [d for d in subdirs if images.list_images(os.path.join(folder, d))]
  if direct and classes:
    raise DataError(f"{folder}: mixes images and class subfolders ({classes[0]}/)")
  return classes, direct


def _labelled(folder: str, classes: list[str] | None) -> tuple[list[str], list[tuple[str, int]]]:
  found, direct = _collect(folder)
  if direct:
    return [], [(p, 0) for p in direct]
  if classes is None:
    classes = found
  items = []
  for name in found:
    if name not in classes:
      raise DataError(f"{os.path.join(folder, name)}: class not in the training split")
    label = classes.index(name)
    items += [(p, label) for p in images.list_images(os.path.join(folder, name))]
  return classes, items


def splits_of(root: str, seed: int = 0) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
  """(class names, {split: [(path, label)]}) of an image folder."""
  images.require_folder(root)
  if os.path.isdir(os.path.join(root, "train")):
    classes, train = _labelled(os.path.join(root, "train"), None)
    val_dir = next(
      (os.path.join(root, n) for n in VALIDATION_NAMES if os.path.isdir(os.path.join(root, n))),
      None,
    )
    if val_dir is None:
      raise DataError(f"{root}: has train/ but no validation/ (or val/, test/) folder")
    _, validation = _labelled(val_dir, classes or None)
    for split, items, folder in (("train", train, "train"), ("validation", validation, val_dir)):
      if not items:
        raise DataError(f"{os.path.join(root, folder)}: empty folder (no PNG/JPEG images)")
    return classes, {"train": train, "validation": validation}
  classes, items = _labelled(root, None)
  if len(items) < 2:
    raise DataError(
      f"{root}: empty folder (needs at least 2 PNG/JPEG images)"
      if not items
      else f"{root}: only one image, cannot hold out a validation split"
    )
  order = np.random.default_rng(seed).permutation(len(items))
  n_val = max(1, len(items) // 10)
  held = set(order[:n_val].tolist())
  return classes, {
    "train": [it for i, it in enumerate(items) if i not in held],
    "validation": [it for i, it in enumerate(items) if i in held],
  }


def _records(items, channels: int, check: images.SizeChecker):
  """Serialized unpaired Examples of [(path, label)], checked for size and channels."""
  for path, label in items:
    yield records.encode_example(check(images.load_image(path, channels), path), label)


def spec(input, image_size=None, channels=None, shards=None, **_) -> DatasetSpec:
  classes, splits = splits_of(input)
  channels = channels or 3
  size = images.peek_size([splits["train"][0][0]], image_size)
  check = images.SizeChecker(image_size)  # shared: validation images must match training ones
  data = {
    split: SplitData(
      len(items), _records(images.shuffled(items), channels, check), shards or DEFAULT_SHARDS[split]
    )
    for split, items in splits.items()
  }
  meta = {
    "source": "folder",
    "paired": False,
    "n_classes": len(classes),
    "classes": classes,
    "channels": channels,
  }
  return DatasetSpec(splits=data, res_log2s=(records.resolution_log2(size),), meta=meta)
