"""Whether a PNG's image data hold every row its header promises.

PIL reads a PNG whose compressed stream ends early but cleanly (a header of 1024x1024 over the
data of one row) without a word, and leaves the missing rows black: its zlib decoder takes the
end of the stream for the end of the image, so `Image.load()` raises nothing, whatever
`ImageFile.LOAD_TRUNCATED_IMAGES` says. The demo would translate that black picture. So the
data are measured here: the IDAT chunks, decompressed (at most one byte beyond what the header
needs, so a decompression bomb costs no more than the image), against the header's size.
"""

import math
import struct
import zlib

# Adam7's passes: (first column, first row, column step, row step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2))
_ADAM7 += ((0, 1, 1, 2),)
# Channels of each PNG colour type: grey, RGB, palette, grey + alpha, RGBA.
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _chunks(raw: bytes):
  """(type, data) of each chunk after the 8-byte signature, up to IEND or the end of `raw`."""
  pos = 8
  while pos + 8 <= len(raw):
    length, kind = struct.unpack(">I4s", raw[pos : pos + 8])
    yield kind, raw[pos + 8 : pos + 8 + length]
    if kind == b"IEND":
      return
    pos += 12 + length


def _row_bytes(width: int, bits_per_pixel: int) -> int:
  """Bytes of one row of scanline data, its filter byte included."""
  return 1 + math.ceil(width * bits_per_pixel / 8)


def missing_rows(raw: bytes) -> str | None:
  """None if the PNG `raw` has all its image data; else what is missing, for a message.

  Call it on bytes PIL has already opened as a PNG (the header was read); an image it cannot
  measure (no IHDR, an unknown colour type) is left to PIL.
  """
  header, data = None, []
  for kind, chunk in _chunks(raw):
    if kind == b"IHDR":
      header = chunk
    elif kind == b"IDAT":
      data.append(chunk)
  if header is None or len(header) < 13:
    return None
  width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header[:13])
  if colour not in _CHANNELS:
    return None
  bits = depth * _CHANNELS[colour]
  if interlace:
    passes = [
      (math.ceil((width - x0) / dx), math.ceil((height - y0) / dy))
      for x0, y0, dx, dy in _ADAM7
      if width > x0 and height > y0
    ]
    expected = sum(rows * _row_bytes(cols, bits) for cols, rows in passes)
  else:
    expected = height * _row_bytes(width, bits)
  try:
    got = len(zlib.decompressobj().decompress(b"".join(data), expected + 1))
  except zlib.error:
    return "its compressed data are corrupt"
  if got >= expected:
    return None
  if interlace:
    return f"its data hold {got} of the {expected} bytes of its {width}x{height} pixels"
  rows = got // _row_bytes(width, bits)
  return f"its header says {width}x{height} pixels, its data hold {rows} of {height} rows"
