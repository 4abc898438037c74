"""Truncated PNG data are refused: a header of 1024x1024 over one row was a black image.

PIL decodes such a PNG without a word (its zlib stream ends cleanly), so the demo measures the
data against the header (`png_data.missing_rows`). Every PNG PIL writes, in every mode, at odd
sizes, and interlaced PNGs (written here by hand: PIL writes none) must still pass. The HTTP
request of the report is in the corpus (test_bad_requests.py, `png-one-row-of-1024`).
"""

import io

import numpy as np
from PIL import Image
import pytest

from glow_tf2.demo import images as image_io
from glow_tf2.demo import png_data
from tests.demo.png_bytes import grey_png


def pil_png(array: np.ndarray, mode: str) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).convert(mode).save(buffer, format="PNG")
  return buffer.getvalue()


def test_the_report_a_header_of_1024x1024_over_one_row_is_refused():
  raw = grey_png(1024, 1024, rows=1)
  assert Image.open(io.BytesIO(raw)).load() is not None  # PIL alone takes it
  with pytest.raises(image_io.ImageError) as error:
    image_io.to_model_image(raw, (16, 16, 1), "image")
  assert str(error.value) == (
    "image: truncated image data: its header says 1024x1024 pixels, its data hold 1 of 1024 rows"
  )


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
@pytest.mark.parametrize("size", [(13, 7), (1, 1), (64, 3)])
def test_every_png_pil_writes_is_complete(mode, size):
  rng = np.random.default_rng(0)
  array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
  raw = pil_png(array, mode)
  assert png_data.missing_rows(raw) is None
  image, _ = image_io.to_model_image(raw, (8, 8, 3), "image")
  assert image.shape == (8, 8, 3)


@pytest.mark.parametrize("size", [(16, 16), (13, 7), (1, 1), (5, 9)])
def test_interlaced_pngs_are_measured_by_their_passes(size):
  complete = grey_png(*size, interlace=1)
  assert png_data.missing_rows(complete) is None
  image, _ = image_io.to_model_image(complete, (4, 4, 1), "image")
  assert np.all(image == 200)
  if size != (1, 1):
    short = grey_png(*size, rows=1, interlace=1)
    assert "bytes of its" in png_data.missing_rows(short)
    with pytest.raises(image_io.ImageError, match="truncated image data"):
      image_io.to_model_image(short, (4, 4, 1), "image")


def test_complete_data_and_broken_streams():
  assert png_data.missing_rows(grey_png(40, 30)) is None
  assert png_data.missing_rows(grey_png(40, 30, rows=29)) == (
    "its header says 40x30 pixels, its data hold 29 of 30 rows"
  )
  raw = bytearray(grey_png(40, 30))
  start = raw.index(b"IDAT") + 4
  raw[start + 2 : start + 6] = b"\xff\xff\xff\xff"  # inside the zlib stream
  assert png_data.missing_rows(bytes(raw)) is not None
