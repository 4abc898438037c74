"""Images in the demo's JSON: base64 PNG <-> uint8 arrays of the model's shape.

Requests carry base64 PNG (or JPEG, GIF, BMP, WebP) images, with or without a `data:` URL prefix.
An image that is not what the model takes is made so, and each change is reported as a note:
transparent pixels go onto white (the canvas and edge drawings are black on white), colour
becomes grey or grey colour, a non-square image is centre-cropped, and the size is resampled.
Truncated or corrupt data are refused, never shown as the black rows PIL would fill in: PIL
raises on most (its `load()`), and a PNG whose data stop short of its header's size, which PIL
reads silently, is measured (`png_data.missing_rows`).
"""

import base64
import binascii
import io

import numpy as np
from PIL import Image

from glow_tf2.demo import png_data

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
# A decompression bomb is refused from its header, before any pixel is decoded.
MAX_PIXELS = 1024 * 1024


class ImageError(ValueError):
  """An image in a request that cannot be used; the message names it."""


def decode_base64(data, what: str, max_bytes: int) -> bytes:
  """The bytes of a base64 string (optionally a `data:...;base64,` URL)."""
  if not isinstance(data, str):
    raise ImageError(f"{what}: expected a base64 PNG string, got {type(data).__name__}")
  if data.startswith("data:"):
    head, _, data = data.partition(",")
    if not head.endswith(";base64"):
      raise ImageError(f"{what}: a data: URL must be base64 encoded")
  if len(data) > 4 * (max_bytes // 3 + 1):
    raise ImageError(f"{what}: image larger than {max_bytes} bytes")
  try:
    return base64.b64decode(data, validate=True)
  except (binascii.Error, ValueError):
    raise ImageError(f"{what}: not valid base64") from None


def to_model_image(
  raw: bytes, shape: tuple[int, int, int], what: str, max_pixels: int = MAX_PIXELS
) -> tuple[np.ndarray, list[str]]:
  """Decodes image bytes into uint8 [H, W, C] of `shape`; returns it and the notes of changes.

  An image of more than `max_pixels` (width x height, read from its header) is refused before
  its pixels are decoded.
  """
  height, width, channels = shape
  try:
    image = Image.open(io.BytesIO(raw))
  except Exception:  # PIL raises several types for bytes that are no image
    raise ImageError(f"{what}: not an image (expected PNG, JPEG, GIF, BMP or WebP)") from None
  if image.format not in FORMATS:
    raise ImageError(f"{what}: format {image.format} not accepted (PNG, JPEG, GIF, BMP, WebP)")
  w, h = image.size
  if w * h > max_pixels or min(w, h) < 1:
    raise ImageError(f"{what}: {w}x{h} pixels; at most {max_pixels} pixels ({w * h} here)")
  try:
    image.load()
  except Exception as error:  # PIL raises several types for broken data
    reason = (str(error).splitlines() or [""])[0][:120]
    raise ImageError(f"{what}: corrupt image ({type(error).__name__}: {reason})") from None
  missing = png_data.missing_rows(raw) if image.format == "PNG" else None
  if missing:
    raise ImageError(f"{what}: truncated image data: {missing}")
  notes = []
  if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    image = Image.alpha_composite(background, rgba)
    if np.asarray(rgba)[..., 3].min() < 255:
      notes.append(f"{what}: transparent pixels put on white")
  mode = "L" if channels == 1 else "RGB"
  if image.mode != mode:
    grey_mode = image.mode in ("L", "1", "I", "I;16", "F", "LA")
    if channels == 1 and not grey_mode:
      rgb = np.asarray(image.convert("RGB"))
      if np.any(rgb[..., 0] != rgb[..., 1]) or np.any(rgb[..., 1] != rgb[..., 2]):
        notes.append(f"{what}: colour converted to grey (the model takes 1 channel)")
    elif channels == 3 and grey_mode:
      notes.append(f"{what}: grey repeated into 3 channels")
    image = image.convert(mode)
  if w != h:
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    notes.append(f"{what}: {w}x{h} is not square; centre-cropped to {side}x{side}")
  if image.size != (width, height):
    side = image.size[0]
    resample = Image.BOX if side > width else Image.BICUBIC
    image = image.resize((width, height), resample)
    notes.append(f"{what}: resized from {side}x{side} to {width}x{height} (the model's size)")
  array = np.asarray(image, np.uint8)
  if channels == 1:
    array = array[..., None]
  return array, notes


def to_png_base64(image: np.ndarray) -> str:
  """uint8 [H, W, C] (C = 1 or 3) -> base64 PNG (no data: prefix)."""
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"to_png_base64: expected uint8 [H, W, 1|3], got {image.dtype} {image.shape}")
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  buffer = io.BytesIO()
  pil.save(buffer, format="PNG")
  return base64.b64encode(buffer.getvalue()).decode("ascii")


def from_png_base64(data: str) -> np.ndarray:
  """base64 PNG (or data: URL) -> uint8 [H, W, C]; the inverse of `to_png_base64`."""
  if data.startswith("data:"):
    data = data.partition(",")[2]
  array = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
  return array[..., None] if array.ndim == 2 else array
