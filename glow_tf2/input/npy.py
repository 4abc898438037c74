"""Source `npy`: the original pix2pix-flow layout `<root>/{train,val}/{A,B}.npy`, uint8
[N, H, W, C] (or [N, H, W] for grey), A[i] and B[i] the two sides of pair i."""

from __future__ import annotations

import os

import numpy as np

from glow_tf2.input import image_files as images
from glow_tf2.input import records
from glow_tf2.input.records import DataError
from glow_tf2.input.writer import DatasetSpec
from glow_tf2.input.writer import SplitData

DEFAULT_SHARDS = {"train": 16, "validation": 2}


def is_npy_layout(root: str) -> bool:
  return os.path.isfile(os.path.join(root, "train", "A.npy"))


def load_array(path: str, channels: int | None) -> np.ndarray:
  """uint8 [N, H, W, C] from one .npy file (memory-mapped)."""
  if not os.path.isfile(path):
    raise DataError(f"{path}: missing file")
  try:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
  except Exception as error:
    raise DataError(f"{path}: unreadable .npy file ({type(error).__name__}: {error})") from None
  if array.ndim == 3:
    array = array[..., None]
  if array.ndim != 4 or array.shape[-1] not in (1, 3):
    raise DataError(f"{path}: expected [N, H, W, C] with C in 1 or 3, got shape {array.shape}")
  if array.dtype != np.uint8:
    raise DataError(f"{path}: expected uint8 pixels, got {array.dtype}")
  if len(array) == 0:
    raise DataError(f"{path}: holds no images")
  if channels == 3 and array.shape[-1] == 1:
    raise DataError(f"{path}: grey images where --channels=3 (colour) is asked")
  return array


def split_arrays(root: str, channels: int | None) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
  out = {}
  for split, folder in images.split_folders(root, "npy").items():
    a = load_array(os.path.join(folder, "A.npy"), channels)
    b = load_array(os.path.join(folder, "B.npy"), channels)
    if len(a) != len(b):
      raise DataError(f"{os.path.join(folder, 'B.npy')}: {len(b)} images but A.npy has {len(a)}")
    if a.shape[1:] != b.shape[1:]:
      raise DataError(
        f"{os.path.join(folder, 'B.npy')}: images {b.shape[1:]} but A.npy has {a.shape[1:]}"
      )
    out[split] = (a, b, folder)
  shapes = {v[0].shape[1:] for v in out.values()}
  if len(shapes) > 1:
    raise DataError(f"{root}: train and val images differ in size {sorted(shapes)}")
  return out


def _records(a, b, folder, channels, image_size):
  check = images.SizeChecker(image_size)
  name = os.path.join(folder, "A.npy")
  for i in range(len(a)):
    ai = images.match_channels(np.asarray(a[i]), channels, name)
    bi = images.match_channels(np.asarray(b[i]), channels, name)
    yield records.encode_pair(check(ai, f"{name}[{i}]"), check(bi, f"{name}[{i}]"))


def spec(input, image_size=None, channels=None, shards=None, **_) -> DatasetSpec:
  arrays = split_arrays(input, channels)
  a0 = arrays["train"][0]
  stored_channels = channels or a0.shape[-1]
  size = (
    image_size
    or images.SizeChecker(None)(a0[0], os.path.join(arrays["train"][2], "A.npy")).shape[0]
  )
  data = {
    split: SplitData(
      len(a), _records(a, b, folder, channels, image_size), shards or DEFAULT_SHARDS[split]
    )
    for split, (a, b, folder) in arrays.items()
  }
  meta = {"source": "npy", "paired": True, "n_classes": 0, "channels": int(stored_channels)}
  return DatasetSpec(splits=data, res_log2s=(records.resolution_log2(size),), meta=meta)
