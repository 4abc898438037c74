"""glow-demo against a corpus of malformed and hostile requests: none may crash or stall it.

Every case goes as raw bytes over its own connection to the session's demo (tests/demo/
conftest.py: 12 connections, 1.5 s deadline) and must get the expected status and a JSON error
naming what is wrong (HEAD: no body); after each, a good translation must still equal the
SavedModel's. Huge images (by pixels and by bytes), bad base64 and PNG, huge numbers, NaN and
infinity, slow clients and the connection cap are cases too.
"""

import base64
import io
import json
import time

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from glow_tf2.demo import images as image_io
from tests.demo import conftest
from tests.serving.raw_http import error_of
from tests.serving.raw_http import exchange
from tests.serving.raw_http import http
from tests.serving.raw_http import trickle

SHAPE = (16, 16, 1)
JSON = {"Content-Type": "application/json"}


def post(endpoint: str, body, headers=None, length=True) -> bytes:
  return http("POST", f"/api/{endpoint}", body, dict(JSON, **(headers or {})), length=length)


def encoded(image: Image.Image, fmt: str = "PNG", **kwargs) -> str:
  buffer = io.BytesIO()
  image.save(buffer, format=fmt, **kwargs)
  return base64.b64encode(buffer.getvalue()).decode()


def raw_post(endpoint: str, text: str) -> bytes:
  return post(endpoint, text.encode())


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
  # --- JSON and HTTP.
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
  add(
    "form-encoded",
    http("POST", "/api/translate", b"x=1", {"Content-Type": "application/x-www-form-urlencoded"}),
    415,
    "send the request body as JSON",
  )
  add("no-content-type", http("POST", "/api/translate", b"{}"), 415, "got none")
  add("no-length", post("sample", None, length=False), 411, "a POST needs a Content-Length header")
  add(
    "chunked",
    post("sample", None, {"Transfer-Encoding": "chunked"}, length=False) + b"2\r\n{}\r\n0\r\n\r\n",
    411,
    "chunked requests are not supported",
  )
  add(
    "length-1GB",
    post("translate", None, {"Content-Length": str(10**9)}, length=False),
    413,
    "request body of 1000000000 bytes; the limit is",
  )
  add(
    "length-negative",
    post("sample", None, {"Content-Length": "-5"}, length=False),
    400,
    "bad Content-Length header: '-5'",
  )
  add(
    "length-garbage",
    post("sample", None, {"Content-Length": "ten"}, length=False),
    400,
    "bad Content-Length header: 'ten'",
  )
  add(
    "short-body",
    (post("sample", None, {"Content-Length": "100"}, length=False) + b"{}", "half-close"),
    400,
    "ended before Content-Length",
  )
  add("bad-request-line", b"\x16\x03\x01 not http\r\n\r\n", 400, "Bad request version")
  add(
    "long-header", http("GET", "/api/health", None, {"X-Big": "a" * 70_000}), 431, "Line too long"
  )
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
  # --- Paths and methods.
  add("unknown-endpoint", post("nothing", {}), 404, "no endpoint /api/nothing")
  add("GET-translate", http("GET", "/api/translate"), 405, "/api/translate takes POST, not GET")
  add("POST-info", post("info", {}), 405, "/api/info takes GET, not POST")
  add("POST-page", http("POST", "/", b"{}", JSON), 405, "POST goes to /api/<endpoint>")
  add("unknown-page", http("GET", "/nope"), 404, "no such page: /nope")
  add("static-traversal", http("GET", "/static/../server.py"), 404, "no such file")
  add("static-missing", http("GET", "/static/nothing.js"), 404, "no such file: /static/nothing.js")
  for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
    add(method, http(method, "/api/sample", b"{}", JSON), 405, f"method {method} not allowed")
  return c


@pytest.fixture(scope="module")
def check(served, loaded):
  """A good translation after each case: equal to the SavedModel's translate_a2b at T = 0."""
  client = served[0]
  image = (np.arange(256, dtype=np.int64).reshape(SHAPE) * 7 % 256).astype(np.uint8)
  expected = loaded.signatures["translate_a2b"](
    images=tf.constant(image[None]), temperature=tf.zeros([1]), seed=tf.constant(0)
  )["images"]
  expected = expected.numpy()[0]

  def still_serving():
    status, _, body, _ = exchange(
      client.port, post("translate", {"image": image_io.to_png_base64(image)})
    )
    assert status == 200, body
    np.testing.assert_array_equal(image_io.from_png_base64(json.loads(body)["output"]), expected)

  return still_serving


CASES = cases()


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_bad_request(client, check, index):
  name, data, status, words = CASES[index]
  half_close = isinstance(data, tuple)
  got_status, headers, body, _ = exchange(
    client.port, data[0] if half_close else data, half_close=half_close
  )
  assert got_status == status, (name, body[:300])
  assert headers.get("content-type") == "application/json"
  message = error_of(body)
  assert words in message, (name, message)
  assert "\n" not in message and len(message) < 600
  check()


HEAD_CASES = [
  ("page", "/", 200),
  ("health", "/api/health", 200),
  ("info", "/api/info", 200),
  ("static", "/static/app.js", 200),
  ("unknown", "/nope", 404),
  ("post-endpoint", "/api/translate", 405),
]


@pytest.mark.parametrize("name, path, status", HEAD_CASES, ids=[c[0] for c in HEAD_CASES])
def test_head(client, check, name, path, status):
  got_status, headers, body, _ = exchange(client.port, http("HEAD", path))
  assert got_status == status and body == b""
  get_status, get_headers, get_body, _ = exchange(client.port, http("GET", path))
  assert get_status == status and int(headers["content-length"]) == len(get_body)
  assert headers["content-type"] == get_headers["content-type"]
  check()


@pytest.mark.parametrize("part", ["headers", "body"])
def test_slow_client_gets_408_at_the_deadline(client, check, part):
  # A body of ~50 bytes at 0.2 s a byte: well past the deadline, whatever the accept latency.
  request = post("sample", {"n": 1, "domain": "a", "temperature": 0.7, "seed": 12})
  split = request.index(b"\r\n\r\n") + 4
  if part == "headers":
    pieces = [request[i : i + 1] for i in range(split)]
  else:
    pieces = [request[:split]] + [request[i : i + 1] for i in range(split, len(request))]
  status, body, seconds = trickle(client.port, pieces[:40], 0.2)
  assert status == 408, body
  assert f"not complete within {conftest.REQUEST_TIMEOUT:g} s" in error_of(body)
  assert conftest.REQUEST_TIMEOUT - 0.1 <= seconds < conftest.REQUEST_TIMEOUT + 8
  check()


def test_connections_beyond_the_cap_get_503(client, check):
  import socket  # pylint: disable=g-import-not-at-top

  idle = [
    socket.create_connection(("127.0.0.1", client.port), timeout=10)
    for _ in range(conftest.MAX_CONNECTIONS)
  ]
  try:
    time.sleep(0.2)
    status, _, body, seconds = exchange(client.port, http("GET", "/api/health"))
    assert status == 503 and seconds < 5
    assert f"too many connections (at most {conftest.MAX_CONNECTIONS})" in error_of(body)
  finally:
    for sock in idle:
      sock.close()
  time.sleep(0.3)
  check()
