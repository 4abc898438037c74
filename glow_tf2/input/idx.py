"""Source `idx`: MNIST / Fashion-MNIST IDX files (gzip or not) in one folder, written unpaired
with their labels, zero-padded to `--image_size` (default 32; 28 -> 32 as the original)."""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from glow_tf2.input import image_files as images
from glow_tf2.input import records
from glow_tf2.input.records import DataError
from glow_tf2.input.writer import DatasetSpec
from glow_tf2.input.writer import SplitData

# split -> (images file stem, labels file stem); `.gz` optional, `-idx3-ubyte` or `.idx3-ubyte`.
_STEMS = {"train": ("train-images", "train-labels"), "validation": ("t10k-images", "t10k-labels")}
DEFAULT_SHARDS = {"train": 16, "validation": 4}


def read_idx(path: str) -> np.ndarray:
  """An IDX file (gzip or not) as a uint8 array of its declared shape."""
  try:
    with open(path, "rb") as handle:
      raw = handle.read()
    if raw[:2] == b"\x1f\x8b":
      raw = gzip.decompress(raw)
  except (EOFError, gzip.BadGzipFile, zlib.error) as error:  # BadGzipFile is an OSError
    raise DataError(f"{path}: corrupt gzip data ({error})") from None
  except OSError as error:
    raise DataError(f"{path}: unreadable IDX file ({error})") from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
    raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DataError(f"{path}: truncated IDX header")
  dims = struct.unpack(f">{ndim}I", raw[4:header])
  size = int(np.prod(dims))
  if len(raw) != header + size:
    raise DataError(
      f"{path}: IDX file holds {len(raw) - header} bytes, its header {dims} needs {size}"
    )
  return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _find(folder: str, stem: str, kind: str) -> str:
  for name in (f"{stem}-{kind}-ubyte", f"{stem}.{kind}-ubyte"):
    for suffix in (".gz", ""):
      path = os.path.join(folder, name + suffix)
      if os.path.isfile(path):
        return path
  raise DataError(f"{os.path.join(folder, stem + '-' + kind + '-ubyte[.gz]')}: missing IDX file")


def read_split(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 28, 28], labels int64 [N]) of `train` or `validation` (the t10k files)."""
  images.require_folder(folder, "IDX folder")
  image_stem, label_stem = _STEMS[split]
  image_path = _find(folder, image_stem, "idx3")
  label_path = _find(folder, label_stem, "idx1")
  x, y = read_idx(image_path), read_idx(label_path)
  if x.ndim != 3:
    raise DataError(f"{image_path}: expected [N, H, W] images, got shape {x.shape}")
  if y.ndim != 1 or len(y) != len(x):
    raise DataError(
      f"{label_path}: {len(y)} labels for {len(x)} images in {os.path.basename(image_path)}"
    )
  if len(x) == 0:
    raise DataError(f"{image_path}: holds no images")
  return x, y.astype(np.int64)


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
  """Zero-pads [N, h, w] centred to [N, size, size] (28 -> 32 adds 2 on each side)."""
  h, w = x.shape[1:3]
  if h > size or w > size:
    raise DataError(f"images are {h}x{w}, larger than --image_size={size}")
  top, left = (size - h) // 2, (size - w) // 2
  return np.pad(x, ((0, 0), (top, size - h - top), (left, size - w - left)))


def with_channels(x: np.ndarray, channels: int) -> np.ndarray:
  """[N, H, W] grey -> [N, H, W, channels], tiled (MNIST as 3 channels, as the original)."""
  return np.repeat(x[..., None], channels, axis=-1) if channels > 1 else x[..., None]


def _records(x, y):
  for image, label in zip(x, y):
    yield records.encode_example(image, int(label))


def spec(input, image_size=None, channels=None, shards=None, **_) -> DatasetSpec:
  size = image_size or 32
  channels = channels or 1
  data = {}
  n_classes = 0
  for split in ("train", "validation"):
    x, y = read_split(input, split)
    x = with_channels(pad_to(x, size), channels)
    n_classes = max(n_classes, int(y.max()) + 1)
    data[split] = SplitData(len(x), _records(x, y), shards or DEFAULT_SHARDS[split])
  meta = {"source": "idx", "paired": False, "n_classes": n_classes, "channels": channels}
  return DatasetSpec(splits=data, res_log2s=(records.resolution_log2(size),), meta=meta)
