"""glow-serve against malformed and hostile HTTP: none may crash or stall it.

Every case is sent as raw bytes over its own connection to the session's server (limits in
tests/serving/conftest.py) and must get the expected status and a JSON error naming what is
wrong (HEAD: no body at all); after each, a good request must still get the right predictions.
The cases: bodies beyond the size limit or with a bad Content-Length, unknown paths and methods,
broken request lines and headers; then slow clients (headers or body trickled past the 1.5 s
deadline), idle connections, the connection cap, a burst of clients beyond it and a keep-alive
connection through errors.
The bodies of predict requests are test_bad_requests.py's.
"""

import json
import socket
import time

import numpy as np
import pytest

from tests.serving import conftest
from tests.serving import load
from tests.serving.raw_http import P
from tests.serving.raw_http import assert_refused
from tests.serving.raw_http import assert_still_serving
from tests.serving.raw_http import error_of
from tests.serving.raw_http import exchange
from tests.serving.raw_http import good
from tests.serving.raw_http import http
from tests.serving.raw_http import trickle


def cases(images):
  """(id, request bytes, expected status, words of the expected error message)."""
  big = b'{"instances": [' + b"0," * (conftest.MAX_BYTES // 2) + b"0]}"
  c = []
  add = lambda *case: c.append(case)  # noqa: E731
  # --- Body sizes and lengths.
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


_IMAGES_FOR_IDS = np.zeros((5,) + conftest.SHAPE, np.uint8)


@pytest.mark.parametrize(
  "index", range(len(cases(_IMAGES_FOR_IDS))), ids=[c[0] for c in cases(_IMAGES_FOR_IDS)]
)
def test_bad_request(server, expected, index):
  assert_refused(server["port"], cases(server["images"])[index])
  assert_still_serving(server, expected)


@pytest.mark.parametrize("name, path, status", head_cases(), ids=[c[0] for c in head_cases()])
def test_head(server, expected, name, path, status):
  got_status, headers, body, _ = exchange(server["port"], http("HEAD", path))
  assert got_status == status and body == b""
  # The length of the body a GET would get (RFC 9110: HEAD sends GET's headers).
  get_status, _, get_body, _ = exchange(server["port"], http("GET", path))
  assert get_status == status and int(headers["content-length"]) == len(get_body)
  assert_still_serving(server, expected)


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


def test_a_burst_of_50_clients_is_answered_never_dropped(server, expected):
  """50 clients at once x 4 requests against the cap of 12 connections: each request gets its
  predictions or a clean 503, none is reset or dropped by a full accept queue (with the listen
  backlog of 5, 38 of such 200 requests were reset)."""
  request = http("POST", P, good(server["images"]))

  def check(_, status, body):
    if status == 503:
      return None if "too many connections" in error_of(body) else f"503 {body[:200]!r}"
    if status != 200:
      return f"status {status}: {body[:200]!r}"
    got = np.array(json.loads(body)["predictions"])
    return None if np.abs(got - expected).max() <= 1 else "wrong predictions"

  overflows = load.listen_overflows()
  result = load.run_clients(server["port"], lambda c, i: (request, None), check, 50, 4, 30.0)
  overflows = load.listen_overflows() - overflows
  assert result.failures == {} and result.wrong == [], result.summary()
  assert len(result.seconds) == 200
  assert overflows == 0, result.summary()  # the machine's counter: any process's overflow
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
