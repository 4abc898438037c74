"""glow-demo against a corpus of malformed API requests: none may crash or stall it.

Every case is a POST to /api/<endpoint> whose JSON body is wrong: not JSON, NaN and infinity,
missing and unknown fields, huge images (by pixels and by bytes), bad base64 and PNG, huge
numbers, temperatures, seeds and counts out of range, codes of the wrong size. It goes as raw
bytes over its own connection to the session's demo (tests/demo/conftest.py: 12 connections,
1.5 s deadline) and must get the expected status and a JSON error naming what is wrong; after
each, a good translation must still equal the SavedModel's (conftest's `check`). The HTTP
around the requests (content types, lengths, paths, methods, slow clients, the connection cap)
is test_bad_http.py's.
"""

import base64
import io

import numpy as np
from PIL import Image
import pytest

from glow_tf2.demo import images as image_io
from tests.demo.demo_pair import SHAPE
from tests.demo.png_bytes import grey_png
from tests.demo.raw_api import post
from tests.demo.raw_api import raw_post
from tests.serving.raw_http import assert_refused
from tests.serving.raw_http import http


def encoded(image: Image.Image, fmt: str = "PNG", **kwargs) -> str:
  buffer = io.BytesIO()
  image.save(buffer, format=fmt, **kwargs)
  return base64.b64encode(buffer.getvalue()).decode()


def cases():
  """(id, request bytes, expected status, words of the expected error message)."""
  good = image_io.to_png_base64(np.zeros(SHAPE, np.uint8))
  code = [0.0] * 256
  big_side = encoded(Image.new("L", (4096, 4096)))  # 63 KB of PNG, 16.7 Mpx
  just_over = encoded(Image.new("L", (1025, 1024)))
  long_thin = encoded(Image.new("L", (20000, 60)))
  noise = np.random.default_rng(3).integers(0, 256, (64, 64), dtype=np.uint8)
  png_bytes = base64.b64decode(encoded(Image.fromarray(noise)))  # ~4 KB, nearly all IDAT
  truncated = base64.b64encode(png_bytes[: len(png_bytes) * 6 // 10]).decode()
  bad_crc = bytearray(png_bytes)
  bad_crc[len(png_bytes) * 7 // 10] ^= 0xFF  # inside the IDAT chunk: the header reads
  too_many_bytes = base64.b64encode(b"\x89PNG" + bytes(3 * 1024 * 1024)).decode()
  c = []
  add = lambda *case: c.append(case)  # noqa: E731
  # --- JSON (the HTTP around it: test_bad_http.py).
  add("not-json", post("translate", b"{not json"), 400, "not valid JSON")
  add("pickle", post("translate", b"\x80\x04\x95pickle."), 400, "not valid JSON")
  add("empty-body", post("translate", b""), 400, "not valid JSON")
  add("invalid-utf8", post("translate", b'{"image": "\xff"}'), 400, "not valid JSON")
  add("deep-nesting", post("translate", b"[" * 50_000 + b"]" * 50_000), 400, "not valid JSON")
  add("trailing-garbage", post("translate", b"{} {}"), 400, "not valid JSON")
  add("json-array", post("translate", [1, 2]), 400, "the request body must be a JSON object")
  add("json-string", post("sample", "sample"), 400, "must be a JSON object")
  add("NaN", raw_post("sample", '{"temperature": NaN}'), 400, "NaN is not a number JSON allows")
  add("Infinity", raw_post("sample", '{"temperature": Infinity}'), 400, "Infinity is not a number")
  # --- Fields.
  add("missing-image", post("translate", {}), 400, "missing field(s) ['image']")
  add(
    "unknown-field",
    post("translate", {"image": good, "pickle": 1}),
    400,
    "unknown field(s) ['pickle']",
  )
  add("image-number", post("translate", {"image": 7}), 400, "expected a base64 PNG string, got int")
  add("image-null", post("translate", {"image": None}), 400, "got NoneType")
  add("image-list", post("encode", {"image": [good]}), 400, "got list")
  add(
    "source-c",
    post("translate", {"image": good, "source": "c"}),
    400,
    "`source` must be one of ['a', 'b'], got 'c'",
  )
  add(
    "source-number", post("translate", {"image": good, "source": 1}), 400, "`source` must be one of"
  )
  add("domain-c", post("encode", {"image": good, "domain": "c"}), 400, "`domain` must be one of")
  add(
    "label-unconditional",
    post("translate", {"image": good, "label": 2}),
    400,
    "not class-conditional",
  )
  # --- Images.
  add("bad-base64", post("translate", {"image": "@@@"}), 400, "image: not valid base64")
  add(
    "base64-not-image",
    post("translate", {"image": base64.b64encode(b"hello").decode()}),
    400,
    "not an image",
  )
  add(
    "data-url-not-base64",
    post("translate", {"image": "data:image/png,abc"}),
    400,
    "must be base64 encoded",
  )
  add("truncated-png", post("translate", {"image": truncated}), 400, "corrupt image")
  add(
    "png-one-row-of-1024",  # PIL reads it silently, the missing rows black
    post("translate", {"image": base64.b64encode(grey_png(1024, 1024, rows=1)).decode()}),
    400,
    "image: truncated image data: its header says 1024x1024 pixels, its data hold 1 of 1024 rows",
  )
  add(
    "bad-crc-png",
    post("translate", {"image": base64.b64encode(bytes(bad_crc)).decode()}),
    400,
    "corrupt image",
  )
  add(
    "tiff",
    post("translate", {"image": encoded(Image.new("L", (16, 16)), "TIFF")}),
    400,
    "format TIFF not accepted",
  )
  add(
    "4096x4096-png",
    post("translate", {"image": big_side}),
    400,
    "4096x4096 pixels; at most 1048576 pixels",
  )
  add(
    "1025x1024-png", post("encode", {"image": just_over}), 400, "1025x1024 pixels; at most 1048576"
  )
  add("20000x60-png", post("translate", {"image": long_thin}), 400, "20000x60 pixels")
  add(
    "huge-from-image",
    post("interpolate", {"images": [big_side, good]}),
    400,
    "from image: 4096x4096 pixels",
  )
  add(
    "huge-to-image",
    post("interpolate", {"images": [good, big_side]}),
    400,
    "to image: 4096x4096 pixels",
  )
  add(
    "image-over-bytes",
    post("translate", {"image": too_many_bytes}),
    400,
    "image larger than 3145728 bytes",
  )
  # --- Numbers.
  add("n-1000", post("sample", {"n": 1000}), 400, "`n` must be in [1, 32], got 1000")
  add("n-0", post("sample", {"n": 0}), 400, "`n` must be in [1, 32], got 0")
  add("n-true", post("sample", {"n": True}), 400, "`n` must be an integer, got True")
  add("n-string", post("sample", {"n": "3"}), 400, "`n` must be an integer, got '3'")
  add("n-fraction", post("sample", {"n": 2.5}), 400, "`n` must be an integer, got 2.5")
  add(
    "n-400-digits",
    raw_post("sample", '{"n": ' + "9" * 400 + "}"),
    400,
    "`n` must be in [1, 32], got 99999",
  )
  add(
    "temperature-negative",
    post("sample", {"temperature": -1}),
    400,
    "`temperature` must be in [0.0, 2.0]",
  )
  add(
    "temperature-3",
    post("sample", {"temperature": 3.0}),
    400,
    "`temperature` must be in [0.0, 2.0], got 3.0",
  )
  add(
    "temperature-string",
    post("sample", {"temperature": "hot"}),
    400,
    "`temperature` must be a finite number, got 'hot'",
  )
  add(
    "temperature-400-digits",
    raw_post("sample", '{"temperature": ' + "9" * 400 + "}"),
    400,
    "`temperature` must be a finite number, got 99999",
  )
  add(
    "temperature-1e400",
    raw_post("sample", '{"temperature": 1e400}'),
    400,
    "must be a finite number, got inf",
  )
  add("seed-2**40", post("sample", {"seed": 2**40}), 400, "`seed` must be in [0, 2147483647]")
  add(
    "seed-negative", post("sample", {"seed": -1}), 400, "`seed` must be in [0, 2147483647], got -1"
  )
  add("seed-null", post("sample", {"seed": None}), 400, "`seed` must be an integer, got None")
  add("sample-domain", post("sample", {"domain": "z"}), 400, "`domain` must be one of")
  add(
    "strength-1e9",
    post("manipulate", {"image": good, "direction": "digit 1", "strength": 1e9}),
    400,
    "`strength` must be in [-20.0, 20.0]",
  )
  add(
    "strength-400-digits",
    raw_post(
      "manipulate",
      '{"image": "' + good + '", "direction": "digit 1", "strength": -' + "9" * 400 + "}",
    ),
    400,
    "`strength` must be a finite number",
  )
  add(
    "strength-bool",
    post("manipulate", {"image": good, "direction": "digit 1", "strength": False}),
    400,
    "`strength` must be a finite number, got False",
  )
  # --- Temperatures, seeds and counts of translations and sampled pairs.
  image = {"image": good}
  add(
    "translate-temperature-negative",
    post("translate", dict(image, temperature=-0.1)),
    400,
    "`temperature` must be in [0.0, 2.0], got -0.1",
  )
  add(
    "translate-temperature-2.5",
    post("translate", dict(image, temperature=2.5)),
    400,
    "`temperature` must be in [0.0, 2.0], got 2.5",
  )
  add(
    "translate-temperature-NaN",
    raw_post("translate", '{"image": "' + good + '", "temperature": NaN}'),
    400,
    "NaN is not a number JSON allows",
  )
  add(
    "translate-temperature-list",
    post("translate", dict(image, temperature=[0.5])),
    400,
    "`temperature` must be a finite number, got [0.5]",
  )
  add(
    "translate-seed-2**31",
    post("translate", dict(image, seed=2**31)),
    400,
    "`seed` must be in [0, 2147483647], got 2147483648",
  )
  add(
    "translate-seed-fraction",
    post("translate", dict(image, seed=0.5)),
    400,
    "`seed` must be an integer, got 0.5",
  )
  add(
    "translate-n-unknown",
    post("translate", dict(image, n=3)),
    400,
    "unknown field(s) ['n']; expected ['image'] and optionally",
  )
  add("translations-no-image", post("translations", {"n": 3}), 400, "missing field(s) ['image']")
  add(
    "translations-n-0",
    post("translations", dict(image, n=0)),
    400,
    "`n` must be in [1, 32], got 0",
  )
  add(
    "translations-n-33",
    post("translations", dict(image, n=33)),
    400,
    "`n` must be in [1, 32], got 33",
  )
  add(
    "translations-n-string",
    post("translations", dict(image, n="6")),
    400,
    "`n` must be an integer, got '6'",
  )
  add(
    "translations-temperature-1e400",
    raw_post("translations", '{"image": "' + good + '", "temperature": 1e400}'),
    400,
    "`temperature` must be a finite number, got inf",
  )
  add(
    "translations-seed-negative",
    post("translations", dict(image, seed=-3)),
    400,
    "`seed` must be in [0, 2147483647], got -3",
  )
  add(
    "translations-source-c",
    post("translations", dict(image, source="c")),
    400,
    "`source` must be one of ['a', 'b'], got 'c'",
  )
  add(
    "translations-bad-image",
    post("translations", {"image": "@@@"}),
    400,
    "image: not valid base64",
  )
  add(
    "pairs-n-100",
    post("sample_pairs", {"n": 100}),
    400,
    "`n` must be in [1, 32], got 100",
  )
  add(
    "pairs-temperature-3",
    post("sample_pairs", {"temperature": 3}),
    400,
    "`temperature` must be in [0.0, 2.0], got 3",
  )
  add(
    "pairs-temperature-bool",
    post("sample_pairs", {"temperature": True}),
    400,
    "`temperature` must be a finite number, got True",
  )
  add(
    "pairs-seed-string",
    post("sample_pairs", {"seed": "1"}),
    400,
    "`seed` must be an integer, got '1'",
  )
  add(
    "pairs-domain",
    post("sample_pairs", {"domain": "a"}),
    400,
    "unknown field(s) ['domain']",
  )
  add(
    "pairs-label-unconditional",
    post("sample_pairs", {"label": 3}),
    400,
    "not class-conditional",
  )
  add(
    "GET-sample-pairs",
    http("GET", "/api/sample_pairs"),
    405,
    "/api/sample_pairs takes POST, not GET",
  )
  # --- Endpoints' own shapes.
  add(
    "interpolate-one-image",
    post("interpolate", {"images": [good]}),
    400,
    "`images` must be a list of two base64 images",
  )
  add("interpolate-not-list", post("interpolate", {"images": good}), 400, "must be a list of two")
  add(
    "interpolate-n-1",
    post("interpolate", {"images": [good, good], "n": 1}),
    400,
    "`n` must be in [2, 16], got 1",
  )
  add(
    "interpolate-n-17",
    post("interpolate", {"images": [good, good], "n": 17}),
    400,
    "`n` must be in [2, 16], got 17",
  )
  add(
    "interpolate-bad-image",
    post("interpolate", {"images": [good, "@@"]}),
    400,
    "to image: not valid base64",
  )
  add(
    "manipulate-unknown-direction",
    post("manipulate", {"image": good, "direction": "hat"}),
    404,
    "unknown direction 'hat'",
  )
  add(
    "manipulate-direction-number",
    post("manipulate", {"image": good, "direction": 5}),
    404,
    "unknown direction 5",
  )
  add(
    "manipulate-no-direction",
    post("manipulate", {"image": good}),
    400,
    "missing field(s) ['direction']",
  )
  add(
    "decode-short-code",
    post("decode", {"code": [0.0] * 3}),
    400,
    "`code` must be a JSON array of 256 numbers",
  )
  add("decode-code-strings", post("decode", {"code": ["0"] * 256}), 400, "array of 256 numbers")
  add("decode-code-bools", post("decode", {"code": [True] * 256}), 400, "array of 256 numbers")
  add("decode-code-object", post("decode", {"code": {"0": 1}}), 400, "array of 256 numbers")
  add("decode-code-1e30", post("decode", {"code": [1e30] * 256}), 400, "magnitude at most 1e4")
  add(
    "decode-code-400-digits",
    raw_post("decode", '{"code": [' + "9" * 400 + ", " + ", ".join(["0"] * 255) + "]}"),
    400,
    "finite numbers of magnitude at most 1e4",
  )
  add(
    "decode-code-1e400",
    raw_post("decode", '{"code": [1e400' + ", 0" * 255 + "]}"),
    400,
    "finite numbers",
  )
  add(
    "decode-domain", post("decode", {"code": code, "domain": "x"}), 400, "`domain` must be one of"
  )
  add(
    "overflow-decode-code",  # within the bound of 1e4, but this model decodes it to NaN pixels
    post("decode", {"code": [5.0] * 256}),
    400,
    "`code` too large for this model: the flow overflowed",
  )
  return c


CASES = cases()


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_bad_request(client, check, index):
  assert_refused(client.port, CASES[index])
  check()
