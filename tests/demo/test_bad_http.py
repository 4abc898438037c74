"""glow-demo against malformed and hostile HTTP: none may crash or stall it.

Every case goes as raw bytes over its own connection to the session's demo (tests/demo/
conftest.py: 12 connections, 1.5 s deadline) and must get the expected status and a JSON error
naming what is wrong (HEAD: no body); after each, a good translation must still equal the
SavedModel's (conftest's `check`). The cases: bodies that are not JSON by their content type,
bad or missing lengths, chunked and short bodies, broken request lines and headers, unknown
paths and methods; then HEAD, slow clients, the connection cap and a burst of clients beyond
it. The JSON bodies of the API are test_bad_requests.py's.
"""

import json
import time

import numpy as np
import pytest

from glow_tf2.demo import images as image_io
from tests.demo import conftest
from tests.demo.raw_api import JSON
from tests.demo.raw_api import post
from tests.serving import load
from tests.serving.raw_http import assert_refused
from tests.serving.raw_http import error_of
from tests.serving.raw_http import exchange
from tests.serving.raw_http import http
from tests.serving.raw_http import trickle


def cases():
  """(id, request bytes, expected status, words of the expected error message)."""
  c = []
  add = lambda *case: c.append(case)  # noqa: E731
  # --- Content type, lengths, request lines and headers.
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


CASES = cases()


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_bad_request(client, check, index):
  assert_refused(client.port, CASES[index])
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


def test_a_burst_of_50_clients_is_answered_never_dropped(client, check):
  """50 clients at once x 4 requests against the cap of 12 connections: each request gets its
  samples or a clean 503, none is reset or dropped by a full accept queue (the listen backlog
  was 5)."""
  request = post("sample", {"n": 1, "domain": "a", "temperature": 0.7, "seed": 5})
  status, _, body, _ = exchange(client.port, request)
  assert status == 200, body
  alone = image_io.from_png_base64(json.loads(body)["images"][0]).astype(int)

  def answered(_, status, body):
    if status == 503:
      return None if "too many connections" in error_of(body) else f"503 {body[:200]!r}"
    if status != 200:
      return f"status {status}: {body[:200]!r}"
    got = image_io.from_png_base64(json.loads(body)["images"][0]).astype(int)
    return None if np.abs(got - alone).max() <= 1 else "other samples than a lone request's"

  overflows = load.listen_overflows()
  result = load.run_clients(client.port, lambda c, i: (request, None), answered, 50, 4, 30.0)
  overflows = load.listen_overflows() - overflows
  assert result.failures == {} and result.wrong == [], result.summary()
  assert len(result.seconds) == 200
  assert overflows == 0, result.summary()  # the machine's counter: any process's overflow
  check()
