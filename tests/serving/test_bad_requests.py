"""glow-serve against a corpus of malformed and hostile requests: none may crash or stall it.

Every case is sent as raw bytes over its own connection to the session's server (limits in
tests/serving/conftest.py) and must get the expected status and a JSON error naming what is
wrong (HEAD: no body at all); after each, a good request must still get the right predictions.
Slow clients (headers or body trickled past the 1.5 s deadline, idle connections) and the
connection cap are cases too.
"""

import json
import select
import socket
import time

import numpy as np
import pytest

from tests.serving import conftest

P = "/v1/models/glow:predict"
IMAGES = conftest.SHAPE


def http(method: str, path: str, body=None, headers=None, length=True) -> bytes:
  """A complete HTTP/1.1 request; a dict or list body is sent as JSON."""
  if body is not None and not isinstance(body, bytes):
    body = json.dumps(body).encode()
  lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
  if body is not None and length:
    lines.append(f"Content-Length: {len(body)}")
  lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
  return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def exchange(port: int, data: bytes, timeout: float = 20.0, half_close: bool = False):
  """Sends `data`, reads to EOF; (status or None, headers dict, body bytes, seconds taken)."""
  start = time.monotonic()
  with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
    if data:
      sock.sendall(data)
    if half_close:
      sock.shutdown(socket.SHUT_WR)
    chunks = []
    while True:
      try:
        chunk = sock.recv(65536)
      except ConnectionResetError:
        break
      if not chunk:
        break
      chunks.append(chunk)
  return _parse(b"".join(chunks)) + (time.monotonic() - start,)


def _parse(reply: bytes):
  if not reply:
    return None, {}, b""
  head, _, body = reply.partition(b"\r\n\r\n")
  lines = head.decode("latin-1").split("\r\n")
  status = int(lines[0].split()[1])
  headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
  return status, headers, body


def error_of(body: bytes) -> str:
  payload = json.loads(body)
  assert set(payload) == {"error"} and isinstance(payload["error"], str), payload
  return payload["error"]


def good(images):
  return {"instances": images.tolist()}


def raw_json(text: str) -> bytes:
  return text.encode()


def cases(images):
  """(id, request bytes, expected status, words of the expected error message)."""
  g = images.tolist()
  img = lambda a: np.asarray(a).tolist()  # noqa: E731
  nested8 = lambda v: [[[v] for _ in range(8)] for _ in range(8)]  # noqa: E731  one 8x8x1 image
  deep = b'{"instances": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
  big = b'{"instances": [' + b"0," * (conftest.MAX_BYTES // 2) + b"0]}"
  sample = lambda **inputs: {"signature_name": "sample_a", "inputs": inputs}  # noqa: E731
  pairs = lambda **inputs: {"signature_name": "sample_pairs", "inputs": inputs}  # noqa: E731
  a2b = lambda **inputs: {"signature_name": "translate_a2b", "inputs": dict(images=g, **inputs)}  # noqa: E731
  decode = lambda eps: {"signature_name": "decode_a", "inputs": {"eps": eps}}  # noqa: E731
  eps_text = lambda v: (  # noqa: E731  a decode_a request whose first eps entry is the text v
    '{"signature_name": "decode_a", "inputs": {"eps": [['
    + v
    + ", "
    + ", ".join(["0.0"] * 63)
    + "]]}}"
  )
  c = []
  add = lambda *case: c.append(case)  # noqa: E731
  # --- JSON.
  add("not-json", http("POST", P, b"{not json"), 400, "not valid JSON")
  add("pickle", http("POST", P, b"\x80\x04\x95pickle."), 400, "not valid JSON")
  add("empty-body", http("POST", P, b""), 400, "not valid JSON")
  add("truncated-json", http("POST", P, b'{"instances": [[[[1]]'), 400, "not valid JSON")
  add("trailing-garbage", http("POST", P, b'{"instances": []} xyz'), 400, "not valid JSON")
  add("invalid-utf8", http("POST", P, b'{"instances": "\xff\xfe"}'), 400, "not valid JSON")
  add("deep-nesting", http("POST", P, deep), 400, "not valid JSON")
  add("json-array", http("POST", P, [1, 2]), 400, "JSON object")
  add("json-string", http("POST", P, "instances"), 400, "JSON object")
  add("json-null", http("POST", P, None, length=False), 411, "Content-Length")
  add("json-number", http("POST", P, b"3"), 400, "JSON object")
  add("NaN", http("POST", P, raw_json(eps_text("NaN"))), 400, "NaN is not a JSON number")
  add("Infinity", http("POST", P, raw_json(eps_text("Infinity"))), 400, "Infinity is not a JSON")
  add("-Infinity", http("POST", P, raw_json(eps_text("-Infinity"))), 400, "Infinity is not")
  # --- Request fields.
  add("no-fields", http("POST", P, {}), 400, "exactly one of 'instances'")
  add("both-formats", http("POST", P, {"instances": g, "inputs": g}), 400, "exactly one of")
  add(
    "unknown-field",
    http("POST", P, {"instances": g, "extra": 1}),
    400,
    "unknown request fields: extra",
  )
  add(
    "signature-int",
    http("POST", P, {"signature_name": 3, "instances": g}),
    400,
    "'signature_name' must be a string",
  )
  add(
    "signature-null",
    http("POST", P, {"signature_name": None, "instances": g}),
    400,
    "must be a string",
  )
  add(
    "signature-unknown",
    http("POST", P, {"signature_name": "nope", "instances": g}),
    400,
    "signature_name 'nope' not found",
  )
  add("instances-empty", http("POST", P, {"instances": []}), 400, "non-empty list")
  add("instances-object", http("POST", P, {"instances": {"images": g}}), 400, "non-empty list")
  add("instances-string", http("POST", P, {"instances": "abc"}), 400, "non-empty list")
  add(
    "instances-mixed", http("POST", P, {"instances": [{"images": g[0]}, g[1]]}), 400, "all objects"
  )
  add(
    "instance-missing-input",
    http("POST", P, {"signature_name": "encode_a", "instances": [{"image": g[0]}]}),
    400,
    "needs the input 'images'",
  )
  add(
    "instance-extra-input",
    http("POST", P, {"signature_name": "encode_a", "instances": [{"images": g[0], "x": 1}]}),
    400,
    "no input(s) x",
  )
  add(
    "rows-for-scalar-input",
    http("POST", P, {"signature_name": "sample_a", "instances": [{"temperature": 0.7, "seed": 1}]}),
    400,
    "use the columnar format",
  )
  add("columns-missing", http("POST", P, sample(temperature=[1.0])), 400, "missing: seed")
  add(
    "columns-unknown",
    http("POST", P, {"signature_name": "encode_a", "inputs": {"images": g, "labels": [0] * 5}}),
    400,
    "unknown: labels",
  )
  add(
    "columns-not-named",
    http("POST", P, {"signature_name": "sample_a", "inputs": [1.0]}),
    400,
    "'inputs' must be an object naming them",
  )
  # --- Types and values.
  add("strings", http("POST", P, {"instances": [nested8("a")]}), 400, "non-numeric or ragged")
  add("booleans", http("POST", P, {"instances": [nested8(True)]}), 400, "booleans")
  add("nulls", http("POST", P, {"instances": [nested8(None)]}), 400, "non-numeric or ragged")
  add("ragged", http("POST", P, {"instances": [g[0], g[1][:3]]}), 400, "rectangular")
  add(
    "fractions-for-uint8",
    http("POST", P, {"instances": img(images / 2)}),
    400,
    "must hold integers (uint8)",
  )
  add(
    "256-for-uint8",
    http("POST", P, {"instances": [nested8(256)]}),
    400,
    "values must be in [0, 255]",
  )
  add(
    "negative-for-uint8",
    http("POST", P, {"instances": [nested8(-1)]}),
    400,
    "values must be in [0, 255]",
  )
  add(
    "10**30-for-uint8",
    http("POST", P, {"instances": [nested8(10**30)]}),
    400,
    "integer too large for uint8",
  )
  add(
    "400-digit-int",
    http(
      "POST",
      P,
      raw_json('{"instances": [' + json.dumps(nested8(0)).replace("0", "9" * 400, 1) + "]}"),
    ),
    400,
    "integer too large for uint8",
  )
  add(
    "400-digit-eps",
    http("POST", P, raw_json(eps_text("9" * 400))),
    400,
    "integer too large for float32",
  )
  add("5000-digit-int", http("POST", P, raw_json(eps_text("9" * 5000))), 400, "not valid JSON")
  add("1e400-is-inf", http("POST", P, raw_json(eps_text("1e400"))), 400, "must be finite")
  add("-1e400-is-inf", http("POST", P, raw_json(eps_text("-1e400"))), 400, "must be finite")
  add("beyond-float32", http("POST", P, raw_json(eps_text("1e39"))), 400, "at most 3.403e+38")
  add(
    "temperature-string", http("POST", P, sample(temperature=["hot"], seed=1)), 400, "non-numeric"
  )
  add("temperature-negative", http("POST", P, sample(temperature=[-1.0], seed=1)), 400, ">= 0")
  add(
    "seed-fraction",
    http("POST", P, sample(temperature=[1.0], seed=1.5)),
    400,
    "must hold integers (int32)",
  )
  add(
    "seed-huge",
    http("POST", P, sample(temperature=[1.0], seed=2**31)),
    400,
    "[-2147483648, 2147483647]",
  )
  add("seed-list", http("POST", P, sample(temperature=[1.0], seed=[1])), 400, "rank 0")
  # --- A translation's optional temperature and seed, and sampled pairs.
  add("translate-temperature-negative", http("POST", P, a2b(temperature=[-0.5] * 5)), 400, ">= 0")
  add(
    "translate-temperature-per-image",
    http("POST", P, a2b(temperature=[0.5] * 3)),
    400,
    "`temperature` must have one entry per image",
  )
  add(
    "translate-temperature-scalar",
    http("POST", P, a2b(temperature=0.5)),
    400,
    "input 'temperature' must have shape ['N']",
  )
  add(
    "translate-temperature-strings",
    http("POST", P, a2b(temperature=["warm"] * 5)),
    400,
    "input 'temperature' must hold numbers",
  )
  add(
    "translate-temperature-1e400",
    http("POST", P, raw_json(json.dumps(a2b(seed=1))[:-2] + ', "temperature": [1e400]}}')),
    400,
    "values must be finite",
  )
  add(
    "translate-seed-fraction",
    http("POST", P, a2b(seed=0.5)),
    400,
    "input 'seed' must hold integers (int32)",
  )
  add("translate-seed-huge", http("POST", P, a2b(seed=-(2**31) - 1)), 400, "[-2147483648, ")
  add(
    "translate-seed-in-rows",
    http("POST", P, {"instances": [{"images": g[0], "seed": 3}]}),
    400,
    "signature 'serving_default' has no input(s) seed (inputs: images)",  # T = 0 only
  )
  add(
    "translate-seed-in-rows-a2b",
    http(
      "POST", P, {"signature_name": "translate_a2b", "instances": [{"images": g[0], "seed": 3}]}
    ),
    400,
    "send it in the columnar format ('inputs'), or leave it out (default 0)",
  )
  add(
    "translate-temperature-in-some-rows",
    http(
      "POST",
      P,
      {
        "signature_name": "translate_b2a",
        "instances": [{"images": g[0], "temperature": 1.0}, {"images": g[1]}],
      },
    ),
    400,
    "every instance needs the input 'temperature' of signature 'translate_b2a' "
    "(inputs: images, seed, temperature), or none of them",
  )
  add(
    "translate-unknown-input",
    http("POST", P, a2b(temp=[1.0] * 5)),
    400,
    "takes inputs images, seed, temperature (optional: temperature, seed); unknown: temp",
  )
  add(
    "translate-no-images",
    http("POST", P, {"signature_name": "translate_a2b", "inputs": {"temperature": [1.0]}}),
    400,
    "missing: images",
  )
  add("pairs-missing-seed", http("POST", P, pairs(temperature=[1.0])), 400, "missing: seed")
  add(
    "pairs-negative-temperature",
    http("POST", P, pairs(temperature=[0.5, -1.0], seed=2)),
    400,
    "sample_pairs: `temperature` must be >= 0",
  )
  add(
    "pairs-65-temperatures",
    http("POST", P, pairs(temperature=[1.0] * 65, seed=1)),
    413,
    "batch of 65 examples",
  )
  # --- Shapes.
  add(
    "rank-3-images",
    http("POST", P, {"instances": img(images[:, :, :, 0])}),
    400,
    "must have shape ['N', 8, 8, 1]",
  )
  add(
    "rank-5-images",
    http("POST", P, {"instances": img(images[:, None])}),
    400,
    "must have shape ['N', 8, 8, 1]",
  )
  add(
    "16x8-images",
    http("POST", P, {"instances": np.zeros((2, 16, 8, 1), int).tolist()}),
    400,
    "not compatible",
  )
  add(
    "3-channel-images",
    http("POST", P, {"instances": np.zeros((2, 8, 8, 3), int).tolist()}),
    400,
    "not compatible",
  )
  add("eps-65", http("POST", P, decode([[0.0] * 65])), 400, "not compatible")
  add("eps-rank-1", http("POST", P, decode([0.0] * 64)), 400, "must have shape ['N', 64]")
  add(
    "temperature-rank-2",
    http("POST", P, sample(temperature=[[1.0]], seed=1)),
    400,
    "must have shape ['N']",
  )
  # --- Batch and body sizes.
  add(
    "65-instances",
    http("POST", P, {"instances": [nested8(0)] * 65}),
    413,
    "batch of 65 examples is larger than this server's limit --max_batch=64",
  )
  add(
    "65-temperatures",
    http("POST", P, sample(temperature=[1.0] * 65, seed=1)),
    413,
    "--max_batch=64",
  )
  add(
    "oversized-body",
    http("POST", P, big),
    413,
    f"larger than the limit of {conftest.MAX_BYTES} bytes",
  )
  add(
    "length-claims-1TB",
    http("POST", P, None, {"Content-Length": "1000000000000"}, length=False) + b"{}",
    413,
    "1000000000000 bytes is larger",
  )
  add(
    "length-negative",
    http("POST", P, None, {"Content-Length": "-5"}, length=False),
    400,
    "bad Content-Length: '-5'",
  )
  add(
    "length-garbage",
    http("POST", P, None, {"Content-Length": "12abc"}, length=False),
    400,
    "bad Content-Length",
  )
  add("no-length", http("POST", P, b"", length=False), 411, "a Content-Length header is required")
  add(
    "chunked",
    http("POST", P, None, {"Transfer-Encoding": "chunked"}, length=False) + b"2\r\n{}\r\n0\r\n\r\n",
    411,
    "chunked requests are not supported",
  )
  # --- Paths and methods.
  add("unknown-path", http("GET", "/v2/whatever"), 404, "no such endpoint: /v2/whatever")
  add("root", http("GET", "/"), 404, "no such endpoint: /; try /v1/models/glow")
  add(
    "other-model",
    http("POST", "/v1/models/other:predict", good(images)),
    404,
    "Servable not found for request: Latest(other)",
  )
  add(
    "other-version",
    http("POST", "/v1/models/glow/versions/9:predict", good(images)),
    404,
    "Specific(glow, 9)",
  )
  add(
    "classify",
    http("POST", "/v1/models/glow:classify", {"examples": []}),
    400,
    "only :predict is supported, not :classify",
  )
  add("GET-predict", http("GET", P), 405, "use POST for :predict")
  add("POST-status", http("POST", "/v1/models/glow", {}), 405, "use GET for the status")
  for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
    add(f"{method}", http(method, "/v1/models/glow"), 405, f"method {method} not allowed")
  add("bad-request-line", b"\x16\x03\x01 not http at all\r\n\r\n", 400, "Bad request version")
  add("http-0.9", b"POST /\r\n\r\n", 400, "Bad HTTP/0.9 request type")
  add(
    "long-request-line",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    414,
    "Request-URI Too Long",
  )
  add(
    "long-header",
    http("GET", "/v1/models/glow", None, {"X-Big": "a" * 70_000}),
    431,
    "Line too long",
  )
  add(
    "many-headers",
    http("GET", "/v1/models/glow", None, {f"X-{i}": "1" for i in range(120)}),
    431,
    "Too many headers",
  )
  add(
    "short-body",
    (http("POST", P, None, {"Content-Length": "100"}, length=False) + b"{}", "half-close"),
    400,
    "ended before Content-Length",
  )
  return c


def head_cases():
  """(id, path, expected status): HEAD gets a GET's status and headers without a body."""
  return [
    ("HEAD-status", "/v1/models/glow", 200),
    ("HEAD-metadata", "/v1/models/glow/metadata", 200),
    ("HEAD-version", "/v1/models/glow/versions/3", 200),
    ("HEAD-predict", P, 405),
    ("HEAD-unknown", "/nope", 404),
  ]


@pytest.fixture(scope="module")
def expected(server):
  """The predictions of the good request, from the library's objects: decode_b(rho encode_a)."""
  import glow_tf2  # pylint: disable=g-import-not-at-top

  glow_a, glow_b = server["glows"]
  eps, _ = glow_a.encode(glow_tf2.preprocess(server["images"], 8, noise=False))
  x, _ = glow_b.decode(server["prior"].rho() * eps)
  return glow_tf2.postprocess(x, 8).numpy().astype(int)


def assert_still_serving(server, expected):
  status, _, body, _ = exchange(server["port"], http("POST", P, good(server["images"])))
  assert status == 200, body
  got = np.array(json.loads(body)["predictions"])
  assert got.shape == expected.shape
  assert np.abs(got - expected).max() <= 1 and np.mean(got != expected) < 0.02


_IMAGES_FOR_IDS = np.zeros((5,) + conftest.SHAPE, np.uint8)


@pytest.mark.parametrize(
  "index", range(len(cases(_IMAGES_FOR_IDS))), ids=[c[0] for c in cases(_IMAGES_FOR_IDS)]
)
def test_bad_request(server, expected, index):
  name, data, status, words = cases(server["images"])[index]
  half_close = isinstance(data, tuple)
  if half_close:
    data = data[0]
  got_status, headers, body, _ = exchange(server["port"], data, half_close=half_close)
  assert got_status == status, (name, body[:300])
  assert headers.get("content-type") == "application/json"
  message = error_of(body)
  assert words in message, (name, message)
  assert "\n" not in message and len(message) < 600
  assert_still_serving(server, expected)


@pytest.mark.parametrize("name, path, status", head_cases(), ids=[c[0] for c in head_cases()])
def test_head(server, expected, name, path, status):
  got_status, headers, body, _ = exchange(server["port"], http("HEAD", path))
  assert got_status == status and body == b""
  # The length of the body a GET would get (RFC 9110: HEAD sends GET's headers).
  get_status, _, get_body, _ = exchange(server["port"], http("GET", path))
  assert get_status == status and int(headers["content-length"]) == len(get_body)
  assert_still_serving(server, expected)


def trickle(port, pieces, pause):
  """Sends `pieces` one by one, `pause` seconds apart, then reads the reply; (status, body, s)."""
  start = time.monotonic()
  with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
    try:
      for piece in pieces:
        if select.select([sock], [], [], 0)[0]:
          break  # the server has answered (or closed): stop sending, read what it said
        sock.sendall(piece)
        time.sleep(pause)
    except (BrokenPipeError, ConnectionResetError):
      pass
    chunks = []
    while True:
      try:
        chunk = sock.recv(65536)
      except ConnectionResetError:
        break
      if not chunk:
        break
      chunks.append(chunk)
  status, _, body = _parse(b"".join(chunks))
  return status, body, time.monotonic() - start


@pytest.mark.parametrize("part", ["headers", "body"])
def test_slow_client_gets_408_at_the_deadline(server, expected, part):
  request = http("POST", P, good(server["images"]))
  split = request.index(b"\r\n\r\n") + 4
  if part == "headers":  # one header byte every 0.2 s: each read is quick, the whole is not
    pieces = [request[i : i + 1] for i in range(split)]
  else:
    pieces = [request[:split]] + [request[i : i + 1] for i in range(split, len(request))]
  status, body, seconds = trickle(server["port"], pieces[:40], 0.2)
  assert status == 408, body
  assert f"not complete within {conftest.REQUEST_TIMEOUT:g} s" in error_of(body)
  assert conftest.REQUEST_TIMEOUT - 0.1 <= seconds < conftest.REQUEST_TIMEOUT + 8
  assert_still_serving(server, expected)


def test_idle_connection_is_closed_without_an_answer(server, expected):
  status, _, body, seconds = exchange(server["port"], b"")
  assert status is None and body == b""
  assert conftest.REQUEST_TIMEOUT - 0.1 <= seconds < conftest.REQUEST_TIMEOUT + 8
  assert_still_serving(server, expected)


def test_connections_beyond_the_cap_get_503(server, expected):
  port = server["port"]
  idle = [
    socket.create_connection(("127.0.0.1", port), timeout=10)
    for _ in range(conftest.MAX_CONNECTIONS)
  ]
  try:
    time.sleep(0.2)  # let the server accept them all
    status, _, body, seconds = exchange(port, http("GET", "/v1/models/glow"))
    assert status == 503 and seconds < 5
    assert f"too many connections (at most {conftest.MAX_CONNECTIONS})" in error_of(body)
  finally:
    for sock in idle:
      sock.close()
  time.sleep(0.3)  # the handlers see EOF and free their slots
  assert_still_serving(server, expected)


def test_keep_alive_connection_survives_errors(server, expected):
  """Errors whose body was read keep the connection; then a good request on it still works."""
  import http.client  # pylint: disable=g-import-not-at-top

  conn = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
  for body, status in [
    (good(server["images"]), 200),
    (b"{bad", 400),
    ({"signature_name": "nope", "instances": [1]}, 400),
    (good(server["images"]), 200),
  ]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", P, body=data)
    response = conn.getresponse()
    payload = json.loads(response.read())
    assert response.status == status, payload
    if status == 200:
      got = np.array(payload["predictions"])
      assert np.abs(got - expected).max() <= 1
  conn.close()
