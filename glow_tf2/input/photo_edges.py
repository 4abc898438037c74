"""`photo_edges64`'s crops: edges <-> photos at 64x64, cut from scikit-image's bundled photos.

Nothing else that installs offline holds real colour photographs larger than 32x32 in number
(docs/data.md), so the 64-pixel path (training, grids, export, translation, serving) is tested
on crops of the few photos scikit-image ships inside its package: `PHOTOS`, each loaded without
a download. Each photo is used at full size and halved with the 2x2 box filter while it still
holds crops (`levels`), so crops show whole objects as well as texture. The edges are Canny's
(sigma 2) on the luma of a whole level, not of each crop, so a crop's border has no edges of
its own; photo and edge map are cut together, one crop of a 4-channel image.

Held out: the right quarter of every photo (a column boundary on a multiple of 4 pixels, the
same place at every level) is the validation region, the rest the training region; a crop lies
wholly in one, so no validation pixel is a training pixel. Training crops are flipped left-right
half the time; positions, levels and flips come from one seeded generator per split.

It is a small set for exercising the 64-pixel path, not for image quality: a handful of photos,
so the crops overlap and repeat their content.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from glow_tf2.input.image_files import box_downsample
from glow_tf2.input.image_files import to_grey

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")
SIZE = 64
N_CROPS = {"train": 2000, "validation": 200}
SEEDS = {"train": 0, "validation": 1}
HELD_OUT = 0.25  # the right quarter of each photo
SIGMA = 2.0  # Canny's Gaussian: clean outlines at these photos' scales, little texture
EDGE = 255  # the edge channel of a crop: 255 on an edge, 0 elsewhere


@dataclasses.dataclass(frozen=True)
class Level:
  """A photo at one scale, with its edge map, and where its held-out region starts.

  Attributes:
    image: uint8 [H, W, 4], the photo's RGB and its edge map (`EDGE` on an edge).
    boundary: the first column of the validation region.
  """

  image: np.ndarray
  boundary: int

  def region(self, split: str) -> tuple[int, int]:
    """[first, last] column a crop of `split` may start at."""
    if split == "train":
      return 0, self.boundary - SIZE
    return self.boundary, self.image.shape[1] - SIZE


def load_photo(name: str) -> np.ndarray:
  """uint8 [H, W, 3] of one of `PHOTOS` (the motorcycle: the left view of the stereo pair)."""
  import skimage.data  # heavy import, only needed here

  if name == "motorcycle":
    return skimage.data.stereo_motorcycle()[0]
  return getattr(skimage.data, name)()[..., :3]


def edge_map(photo: np.ndarray) -> np.ndarray:
  """uint8 [H, W]: `EDGE` where Canny (sigma `SIGMA`) finds an edge in the photo's luma."""
  from skimage.feature import canny  # heavy import, only needed here

  return np.where(canny(to_grey(photo)[..., 0] / 255.0, sigma=SIGMA), EDGE, 0).astype(np.uint8)


def levels(photo: np.ndarray) -> list[Level]:
  """The photo at full size, halved, quartered, ...: every level whose training and validation
  regions both hold a `SIZE` x `SIZE` crop."""
  height, width = photo.shape[:2]
  boundary = 4 * int(width * (1 - HELD_OUT) // 4)  # divides by 2 at the first two halvings
  out = []
  while height >= SIZE and boundary >= SIZE and width - boundary >= SIZE:
    out.append(Level(np.concatenate([photo, edge_map(photo)[..., None]], -1), boundary))
    if boundary % 2:
      break
    height, width, boundary = height // 2, width // 2, boundary // 2
    photo = box_downsample(photo[: 2 * height, : 2 * width])
  return out


def crops(all_levels: list[Level], split: str, n: int, seed: int) -> np.ndarray:
  """uint8 [n, SIZE, SIZE, 4]: crops of `split`'s region, each from a level drawn uniformly
  (small photos as often as large ones), at a uniform position; training's flipped half the
  time."""
  rng = np.random.default_rng(seed)
  out = np.empty((n, SIZE, SIZE, 4), np.uint8)
  for i in range(n):
    level = all_levels[rng.integers(len(all_levels))]
    first, last = level.region(split)
    top = rng.integers(0, level.image.shape[0] - SIZE + 1)
    left = rng.integers(first, last + 1)
    crop = level.image[top : top + SIZE, left : left + SIZE]
    out[i] = crop[:, ::-1] if split == "train" and rng.random() < 0.5 else crop
  return out


def splits() -> dict[str, np.ndarray]:
  """{split: uint8 [N, SIZE, SIZE, 4]}: `N_CROPS` crops of each split, photo and edges."""
  all_levels = [level for name in PHOTOS for level in levels(load_photo(name))]
  return {split: crops(all_levels, split, n, SEEDS[split]) for split, n in N_CROPS.items()}


def pairs(cut: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
  """(A, B) uint8 [N, SIZE, SIZE, channels] of crops `cut` [N, SIZE, SIZE, 4]: A the edges
  black on white (tiled to 3 channels when asked), B the photo (its luma at 1 channel)."""
  edges = 255 - cut[..., 3:]
  photo = cut[..., :3]
  if channels == 1:
    return edges, to_grey(photo)
  return np.repeat(edges, channels, axis=-1), np.ascontiguousarray(photo)
