"""Reading image files and bringing them to a square power-of-two size, as the original
generators did: centre crop, then 2x2 box downsampling (floor of the mean) down to the size."""

from __future__ import annotations

from collections.abc import Iterable
import os
import re

import numpy as np
from PIL import Image

from glow_tf2.input.records import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def list_images(folder: str) -> list[str]:
  """Image files directly in `folder`, sorted naturally (2.png before 10.png)."""
  names = [
    n
    for n in os.listdir(folder)
    if n.lower().endswith(IMAGE_EXTENSIONS)
    and not n.startswith(".")
    and os.path.isfile(os.path.join(folder, n))
  ]
  return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


# pix2pix's and pix2pix-flow's layouts: a split's folder and the names it may go by.
SPLIT_FOLDERS = {"train": ("train",), "validation": ("val", "validation")}


def split_folders(root: str, layout: str) -> dict[str, str]:
  """{split: folder} of `root/{train,val}`; a missing split is a DataError naming the layout."""
  require_folder(root)
  out = {}
  for split, names in SPLIT_FOLDERS.items():
    folder = next(
      (os.path.join(root, n) for n in names if os.path.isdir(os.path.join(root, n))), None
    )
    if folder is None:
      raise DataError(
        f"{os.path.join(root, names[0])}: missing folder ({layout} layout needs train/ and val/)"
      )
    out[split] = folder
  return out


def natural_key(name: str) -> list:
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def require_folder(path: str | None, what: str = "input folder") -> str:
  if not path:
    raise DataError(f"--input: no {what} given")
  if not os.path.isdir(path):
    raise DataError(
      f"{path}: {what} does not exist" if not os.path.exists(path) else f"{path}: not a folder"
    )
  return path


def to_grey(rgb: np.ndarray) -> np.ndarray:
  """ITU-R 601-2 luma with PIL's integer rounding: uint8 [..., 3] -> uint8 [..., 1]."""
  rgb = rgb.astype(np.uint32)
  grey = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
  return grey.astype(np.uint8)[..., None]


def match_channels(image: np.ndarray, channels: int | None, path: str) -> np.ndarray:
  """uint8 [H, W, C] with C in {1, 3} to `channels` (None keeps it).

  Grey where colour is asked is an error: it would silently train a colour model on grey data.
  """
  c = image.shape[-1]
  if channels is None or channels == c:
    return image
  if channels == 1 and c == 3:
    return to_grey(image)
  if channels == 3 and c == 1:
    raise DataError(f"{path}: grey image where --channels=3 (colour) is asked")
  raise DataError(f"{path}: {c} channels, cannot make {channels}")


def load_image(path: str, channels: int | None = None) -> np.ndarray:
  """Decodes an image file to uint8 [H, W, C] (C = 1 for grey files, 3 for colour ones).

  Raises:
    DataError: the file cannot be read or decoded (names the file).
  """
  try:
    with Image.open(path) as image:
      image.load()
      if image.mode in ("L", "1", "I;16", "I", "F", "LA"):
        array = np.asarray(image.convert("L"))[..., None]
      else:
        array = np.asarray(image.convert("RGB"))
  except FileNotFoundError:
    raise DataError(f"{path}: no such file") from None
  except Exception as error:  # PIL raises many types for corrupt data
    raise DataError(
      f"{path}: unreadable or corrupt image ({type(error).__name__}: {error})"
    ) from None
  return match_channels(np.ascontiguousarray(array), channels, path)


def centre_crop(image: np.ndarray) -> np.ndarray:
  h, w = image.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  return image[top : top + side, left : left + side]


def box_downsample(image: np.ndarray) -> np.ndarray:
  """2x2 box filter, floor of the mean (the original's `x_to_uint8(downsample(x))`)."""
  h, w, c = image.shape
  blocks = image.reshape(h // 2, 2, w // 2, 2, c).astype(np.uint16)
  return (blocks.sum(axis=(1, 3)) // 4).astype(np.uint8)


def _pil_resize(image: np.ndarray, side: int, method) -> np.ndarray:
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  out = np.asarray(pil.resize((side, side), method))
  return out[..., None] if out.ndim == 2 else out


def to_size(image: np.ndarray, size: int) -> np.ndarray:
  """Centre-crops to a square and brings the side to `size`.

  An image already `size` x `size` is returned unchanged. Larger ones are first resized (box
  filter) to the largest `size * 2^k` not above their side, then halved k times with the 2x2
  box filter; smaller ones are upsampled (bicubic).
  """
  if image.shape[0] == image.shape[1] == size:
    return image
  image = centre_crop(image)
  side = image.shape[0]
  if side < size:
    return _pil_resize(image, size, Image.Resampling.BICUBIC)
  target = size
  while target * 2 <= side:
    target *= 2
  if side != target:
    image = _pil_resize(image, target, Image.Resampling.BOX)
  while image.shape[0] > size:
    image = box_downsample(image)
  return image


def pyramid(image: np.ndarray, smallest: int = 4) -> list[np.ndarray]:
  """`image` and its repeated 2x2 box downsamplings down to `smallest` (CelebA's lods)."""
  out = [image]
  while out[-1].shape[0] > smallest:
    out.append(box_downsample(out[-1]))
  return out


class SizeChecker:
  """Decides the stored size: `--image_size` when given, else the (common) size of the images.

  Without `--image_size` every image must have the first image's size, square, power of two.
  """

  def __init__(self, image_size: int | None):
    self.image_size = image_size
    self.first: tuple[str, tuple[int, int]] | None = None

  def __call__(self, image: np.ndarray, path: str) -> np.ndarray:
    if self.image_size is not None:
      return to_size(image, self.image_size)
    hw = image.shape[:2]
    if self.first is None:
      if hw[0] != hw[1] or hw[0] & (hw[0] - 1):
        raise DataError(
          f"{path}: {hw[1]}x{hw[0]} is not a square power-of-two size; give --image_size"
        )
      self.first = (path, hw)
    elif hw != self.first[1]:
      raise DataError(
        f"{path}: images of different sizes ({hw[1]}x{hw[0]} here, "
        f"{self.first[1][1]}x{self.first[1][0]} in {os.path.basename(self.first[0])}); give --image_size"
      )
    return image


def peek_size(paths: Iterable[str], image_size: int | None, crop=None) -> int:
  """The stored side length: `image_size`, else the first image's (checked by SizeChecker)."""
  if image_size is not None:
    return image_size
  for path in paths:
    image = load_image(path)
    if crop is not None:
      image = crop(image)
    return SizeChecker(None)(image, path).shape[0]
  raise DataError("no images")


def shuffled(items: list, seed: int = 0) -> list:
  """`items` in a seeded random order: sources hand records to the writer shuffled, so every
  shard holds a mix (folders list files sorted, often by class)."""
  order = np.random.default_rng(seed).permutation(len(items))
  return [items[i] for i in order]
