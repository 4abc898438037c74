"""Source `cifar10`: CIFAR-10 from its BINARY version (cifar-10-binary.tar.gz, extracted):
`<input>/data_batch_{1..5}.bin` (train, 50,000) and `<input>/test_batch.bin` (validation,
10,000), in `<input>` or `<input>/cifar-10-batches-bin/`.

Each record of a .bin file is 3073 bytes: the label (0..9), then the 32x32 image as three
1024-byte planes (red, green, blue), each row-major. Stored as uint8 [32, 32, 3] with the label,
as Glow trained on it (Keras's cifar10.load_data, the same pixels); class names from
`batches.meta.txt` when present. `--image_size` 16, 8, ... box-downsamples (Glow's `downsample`);
`--channels=1` stores grey. The pickled Python version is not read (unpickling runs code).
"""

from __future__ import annotations

import os

import numpy as np

from glow_tf2.input import image_files as images
from glow_tf2.input import records
from glow_tf2.input.records import DataError
from glow_tf2.input.writer import DatasetSpec
from glow_tf2.input.writer import SplitData

SIDE = 32
RECORD_BYTES = 1 + 3 * SIDE * SIDE
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
N_CLASSES = 10
DEFAULT_SHARDS = {"train": 50, "validation": 10}


def find_folder(root: str) -> str:
  """The folder holding the .bin files: `root` or `root/cifar-10-batches-bin`."""
  images.require_folder(root)
  for folder in (root, os.path.join(root, "cifar-10-batches-bin")):
    if os.path.isfile(os.path.join(folder, TEST_FILE)):
      return folder
  for folder in (root, os.path.join(root, "cifar-10-batches-py")):
    if os.path.isfile(os.path.join(folder, "data_batch_1")):
      raise DataError(
        f"{folder}: the pickled Python version of CIFAR-10; give the binary version "
        "(cifar-10-binary.tar.gz: data_batch_N.bin, test_batch.bin)"
      )
  raise DataError(f"{root}: no {TEST_FILE} here or in cifar-10-batches-bin/ (CIFAR-10 binary)")


def read_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 32, 32, 3], labels int64 [N]) of one CIFAR-10 .bin file."""
  try:
    raw = np.fromfile(path, np.uint8)
  except OSError as error:
    raise DataError(f"{path}: cannot read ({error.strerror})") from None
  if raw.size == 0 or raw.size % RECORD_BYTES:
    raise DataError(
      f"{path}: {raw.size} bytes, not a whole number of {RECORD_BYTES}-byte CIFAR-10 records"
    )
  rows = raw.reshape(-1, RECORD_BYTES)
  labels = rows[:, 0].astype(np.int64)
  if labels.max() >= N_CLASSES:
    bad = int(np.argmax(labels >= N_CLASSES))
    raise DataError(f"{path}: record {bad} has label {labels[bad]} (CIFAR-10 labels are 0..9)")
  planes = rows[:, 1:].reshape(-1, 3, SIDE, SIDE)  # [N, C, H, W]
  return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), labels


def read_split(folder: str, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
  for name in names:
    if not os.path.isfile(os.path.join(folder, name)):
      raise DataError(f"{os.path.join(folder, name)}: missing CIFAR-10 batch file")
  parts = [read_batch(os.path.join(folder, name)) for name in names]
  return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def class_names(folder: str) -> list[str]:
  path = os.path.join(folder, "batches.meta.txt")
  if not os.path.isfile(path):
    return []
  with open(path) as handle:
    names = [line.strip() for line in handle if line.strip()]
  return names if len(names) == N_CLASSES else []


def _records(x, y, channels, size, order):
  for i in order:
    image = images.match_channels(x[i], channels, "CIFAR-10")
    yield records.encode_example(images.to_size(image, size), int(y[i]))


def spec(input, image_size=None, channels=None, shards=None, limit=None, **_) -> DatasetSpec:
  folder = find_folder(input)
  size = image_size or SIDE
  if size > SIDE:
    raise ValueError(f"--image_size={size}: CIFAR-10 images are {SIDE}x{SIDE}")
  channels = channels or 3
  data = {}
  for split, names in (("train", TRAIN_FILES), ("validation", (TEST_FILE,))):
    x, y = read_split(folder, names)
    n = len(x) if limit is None else min(len(x), int(limit))
    # A seeded order: every shard gets a mix of the batch files and classes.
    order = np.random.default_rng(0).permutation(len(x))[:n]
    data[split] = SplitData(
      n, _records(x, y, channels, size, order), shards or DEFAULT_SHARDS[split]
    )
  meta = {
    "source": "cifar10",
    "paired": False,
    "n_classes": N_CLASSES,
    "classes": class_names(folder),
    "channels": channels,
  }
  return DatasetSpec(splits=data, res_log2s=(records.resolution_log2(size),), meta=meta)
