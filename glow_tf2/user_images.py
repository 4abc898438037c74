"""A user's own image files: found on disk and brought to a model's shape.

glow-translate reads whatever a user points it at, files and folders of PNG or JPEG (WebP, BMP)
of any size, grey or colour, and a model takes one shape `[H, W, C]`. `find_images` lists the
files, each with the name its outputs take; `load` decodes one (`input.image_files.load_image`,
the decoder glow-data uses, so a file glow-data reads reads the same here); `fit` brings it to
the shape in one of two ways, which the user picks because neither is right for every picture:

  crop:    the largest centred region of the model's aspect ratio, scaled to H x W. Shapes keep
           their proportions and the borders are lost; glow-data's folder sources centre-crop
           too, so this is how training pictures were framed.
  resize:  the whole picture scaled to H x W. Nothing is lost and shapes stretch.

Scaling down averages over each output pixel's area (PIL's box filter, as glow-data's 2x2 box
downsampling does), scaling up is bicubic. Colour becomes grey by glow-data's ITU-R 601 luma,
grey becomes colour by repeating it (glow-data refuses the latter for training; a picture to
translate is only asked to look right).
"""

from collections.abc import Sequence
import dataclasses
import math
import os

import numpy as np
from PIL import Image

from glow_tf2.input import image_files

FITS = ("crop", "resize")
EXTENSIONS = image_files.IMAGE_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class ImageFile:
  """One image file to translate.

  Attributes:
    path: where it is, as found (under the input given).
    stem: its outputs' name without extension, relative to the input given ("sub/cat" for
      `photos/sub/cat.jpg` under the input `photos`; "cat" for the input `photos/sub/cat.jpg`).
  """

  path: str
  stem: str


def _in_folder(folder: str, skip: str | None) -> list[ImageFile]:
  found = []
  for root, dirs, files in os.walk(folder):
    # Hidden folders are a tool's (.git, .ipynb_checkpoints); the output folder is our own.
    dirs[:] = [
      d for d in dirs if not d.startswith(".") and os.path.realpath(os.path.join(root, d)) != skip
    ]
    for name in files:
      if name.startswith(".") or not name.lower().endswith(EXTENSIONS):
        continue
      path = os.path.join(root, name)
      relative = os.path.relpath(path, folder)
      found.append(ImageFile(path, os.path.splitext(relative)[0].replace(os.sep, "/")))
  return sorted(found, key=lambda f: (image_files.natural_key(f.stem), f.path))


def find_images(inputs: Sequence[str], skip: str | None = None) -> list[ImageFile]:
  """The image files of `inputs`, in a stable order: each input's in natural order, inputs in turn.

  A folder is searched recursively for files named `*.png`, `*.jpg`, `*.jpeg`, `*.webp`, `*.bmp`
  (hidden files and folders left out); a file is taken whatever its name. A file reached twice
  (a folder and a file in it) is taken once.

  Args:
    inputs: paths of files and folders.
    skip: a folder never searched (the output folder, so that a second run inside an input
      folder does not translate the first run's outputs).

  Raises:
    FileNotFoundError: an input that does not exist.
    ValueError: two files that would write the same output (`a.jpg` and `a.png` of one folder,
      or one relative name under two input folders), naming both.
  """
  skip = os.path.realpath(skip) if skip else None
  found, seen, stems = [], set(), {}
  for given in inputs:
    if os.path.isdir(given):
      files = _in_folder(given, skip)
    elif os.path.isfile(given):
      files = [ImageFile(given, os.path.splitext(os.path.basename(given))[0])]
    else:
      raise FileNotFoundError(f"{given}: no such file or folder")
    for file in files:
      real = os.path.realpath(file.path)
      if real in seen:
        continue
      if file.stem in stems:
        raise ValueError(
          f"{stems[file.stem]} and {file.path} would both be written as {file.stem}.png; "
          "rename one or translate them separately"
        )
      seen.add(real)
      stems[file.stem] = file.path
      found.append(file)
  return found


def load(path: str) -> np.ndarray:
  """uint8 `[H, W, C]` of an image file, C = 1 for a grey file and 3 for a colour one.

  Raises:
    glow_tf2.DataError: the file cannot be read or decoded (the message names it).
  """
  return image_files.load_image(path)


def centre_crop(image: np.ndarray, aspect: float) -> np.ndarray:
  """The largest centred region of `image` `[H, W, C]` whose height / width is `aspect`."""
  h, w = image.shape[:2]
  if h > w * aspect:
    crop_h, crop_w = max(1, round(w * aspect)), w
  else:
    crop_h, crop_w = h, max(1, round(h / aspect))
  top, left = (h - crop_h) // 2, (w - crop_w) // 2
  return image[top : top + crop_h, left : left + crop_w]


def scale(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """`image` `[h, w, C]` scaled to `[height, width, C]`: area average down, bicubic up."""
  h, w, c = image.shape
  if (h, w) == (height, width):
    return image
  shrinking = height <= h and width <= w
  method = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
  pil = Image.fromarray(image[..., 0] if c == 1 else image)
  out = np.asarray(pil.resize((width, height), method))
  return out.reshape(height, width, c)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
  """uint8 `[H, W, 1 or 3]` -> `[H, W, channels]`: luma for grey, the grey repeated for colour."""
  c = image.shape[-1]
  if c == channels:
    return image
  if channels == 1:
    return image_files.to_grey(image)
  return np.repeat(image, channels, axis=-1)


def fit(image: np.ndarray, shape: Sequence[int], how: str) -> np.ndarray:
  """uint8 `image` `[h, w, 1 or 3]` brought to the model's `shape` `(H, W, C)` (see the module).

  Args:
    image: a decoded image, any size.
    shape: the model's (H, W, C), C = 1 or 3.
    how: "crop" (centre crop to H:W, then scale) or "resize" (scale the whole image).

  Raises:
    ValueError: an unknown `how`.
  """
  height, width, channels = (int(s) for s in shape)
  if how == "crop":
    image = centre_crop(image, height / width)
  elif how != "resize":
    raise ValueError(f"fit must be one of {', '.join(FITS)}, got {how!r}")
  return to_channels(scale(image, height, width), channels)


def describe_fit(shape: Sequence[int], how: str) -> str:
  """What `fit` does to every image, in words, for the binary's first lines."""
  height, width, channels = (int(s) for s in shape)
  colours = "grey (colour converted by luma)" if channels == 1 else "colour (grey repeated)"
  if how == "crop":
    g = math.gcd(height, width)
    return f"centre-cropped to {height // g}:{width // g} and scaled to {height}x{width}, {colours}"
  return f"resized whole to {height}x{width} (aspect ratio not kept), {colours}"
