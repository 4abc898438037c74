"""PNG files written by hand, byte by byte: what PIL will not write (interlaced, or data that
stop short of the header's size). Used by test_png_data.py and the bad-request corpus."""

import math
import struct
import zlib

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2))
ADAM7 += ((0, 1, 1, 2),)


def _chunk(kind: bytes, data: bytes) -> bytes:
  crc = zlib.crc32(kind + data) & 0xFFFFFFFF
  return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def grey_png(width, height, rows=None, interlace=0, value=200) -> bytes:
  """An 8-bit grey PNG whose data hold `rows` rows (all by default) of its header's height.

  Interlaced: `rows` counts the scanlines of all Adam7 passes together.
  """
  if interlace:
    sizes = [
      (math.ceil((width - x0) / dx), math.ceil((height - y0) / dy))
      for x0, y0, dx, dy in ADAM7
      if width > x0 and height > y0
    ]
    lines = [b"\x00" + bytes([value]) * cols for cols, n in sizes for _ in range(n)]
  else:
    lines = [b"\x00" + bytes([value]) * width for _ in range(height)]
  header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, interlace)
  data = zlib.compress(b"".join(lines[:rows]))
  return (
    b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
  )
