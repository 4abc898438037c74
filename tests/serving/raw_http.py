"""Raw HTTP to the session's glow-serve (conftest.py): requests as bytes, replies parsed.

The bad-request corpora (test_bad_requests.py: the predict bodies; test_bad_http.py: the HTTP
around them) send each request over its own connection with `exchange` and check, after each,
that a good request still gets the right predictions (`assert_still_serving`).
"""

import json
import select
import socket
import time

import numpy as np

P = "/v1/models/glow:predict"


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
  return parse_reply(b"".join(chunks)) + (time.monotonic() - start,)


def parse_reply(reply: bytes):
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
  status, _, body = parse_reply(b"".join(chunks))
  return status, body, time.monotonic() - start


def assert_still_serving(server, expected):
  status, _, body, _ = exchange(server["port"], http("POST", P, good(server["images"])))
  assert status == 200, body
  got = np.array(json.loads(body)["predictions"])
  assert got.shape == expected.shape
  assert np.abs(got - expected).max() <= 1 and np.mean(got != expected) < 0.02


def assert_refused(port: int, case) -> None:
  """Sends a bad-request case (name, bytes or (bytes,) to half-close after, status, words) and
  asserts its answer: that status, a JSON body, and a one-line error message holding the words."""
  name, data, status, words = case
  half_close = isinstance(data, tuple)
  got_status, headers, body, _ = exchange(
    port, data[0] if half_close else data, half_close=half_close
  )
  assert got_status == status, (name, body[:300])
  assert headers.get("content-type") == "application/json"
  message = error_of(body)
  assert words in message, (name, message)
  assert "\n" not in message and len(message) < 600
