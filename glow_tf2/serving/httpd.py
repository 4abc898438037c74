"""The HTTP plumbing glow-serve and glow-demo share: bounded connections and request deadlines.

The standard library's `ThreadingHTTPServer` starts a thread per connection, without limit, and
its socket timeout is per read: a client sending one byte every few seconds holds a thread for
ever. `BoundedHTTPServer` fixes both:

* at most `max_connections` connections are served at once; one more is answered `503` with a
  JSON error and closed at once (never queued: a queue is a thread or memory per client again);
* the listen backlog is at least `max_connections` (the standard library's default is 5): a
  burst of clients connecting at once waits in the kernel's queue until the accept loop takes
  it, where with 5 the kernel dropped the rest of the burst and clients saw their connections
  reset;
* each request has an absolute deadline of `request_timeout` seconds, from the first byte the
  server waits for (the request line, or the idle time of a keep-alive connection) until its
  body has been read. A request still incomplete then gets `408` and its connection is closed.

Handlers derive from `DeadlineHandler`, which reads through `DeadlineReader`.
"""

import http.server
import io
import json
import socket
import threading
import time

from absl import logging

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_REQUEST_TIMEOUT = 30.0  # seconds to send a whole request (headers and body)
DEFAULT_QUEUE_TIMEOUT = 60.0  # seconds a parsed request may wait for a model slot before 503
# The least listen backlog: the classic SOMAXCONN, so that under a small --max_connections a
# burst beyond it still reaches the accept loop (and its 503) rather than a full queue.
MIN_LISTEN_BACKLOG = 128


class DeadlineReader(io.RawIOBase):
  """A socket's input with one absolute deadline per request (not a timeout per read).

  `start(seconds)` sets the deadline; every `recv` then waits at most the time left, and once it
  is gone raises `TimeoutError` (what the stdlib handler already treats as a timed-out request).
  """

  def __init__(self, sock: socket.socket, write_timeout: float):
    super().__init__()
    self._sock = sock
    self._write_timeout = write_timeout
    self._deadline = None
    self.expired = False
    self.received = 0  # bytes received since `start`

  def start(self, seconds: float) -> None:
    self._deadline = time.monotonic() + seconds
    self.expired = False
    self.received = 0

  def readable(self) -> bool:
    return True

  def readinto(self, buffer) -> int:
    left = self._deadline - time.monotonic() if self._deadline is not None else None
    if left is not None and left <= 0:
      self.expired = True
      raise TimeoutError("request deadline passed")
    try:
      self._sock.settimeout(left)
      n = self._sock.recv_into(buffer)
    except TimeoutError:
      self.expired = True
      raise
    finally:
      # Writes (the response) get the ordinary per-write timeout, not what is left of the read.
      self._sock.settimeout(self._write_timeout)
    self.received += n
    return n


class DeadlineHandler(http.server.BaseHTTPRequestHandler):
  """A request handler whose reads obey the server's `request_timeout` deadline.

  A request that misses its deadline after sending something gets `408` (an idle keep-alive
  connection that sent nothing is just closed). Subclasses implement `send_json_error`.
  """

  protocol_version = "HTTP/1.1"
  # What a request that never got as far as its version is answered in: the stdlib's "HTTP/0.9"
  # would send a bare body without a status line.
  default_request_version = "HTTP/1.0"

  def setup(self):
    super().setup()
    self.timeout = self.server.request_timeout
    self.connection.settimeout(self.timeout)
    self._reader = DeadlineReader(self.connection, self.server.request_timeout)
    self.rfile = io.BufferedReader(self._reader, 65536)

  def handle_one_request(self):
    self._reader.start(self.server.request_timeout)
    self._responded = False
    # What parse_request sets, for an answer to a request that timed out before it.
    self.command, self.requestline = None, ""
    self.request_version = self.default_request_version
    super().handle_one_request()
    if self._reader.expired:
      self.close_connection = True
      if self._reader.received and not self._responded:
        try:
          self.send_json_error(
            408, f"request not complete within {self.server.request_timeout:g} s"
          )
        except OSError:
          pass

  def send_response(self, code, message=None):
    self._responded = True
    super().send_response(code, message)

  def send_json_error(self, status: int, message: str) -> None:
    """Answers `status` with {"error": message} and closes the connection."""
    self.close_connection = True
    body = json.dumps({"error": message}).encode()
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(body)))
    self.send_header("Connection", "close")
    self.end_headers()
    if self.command != "HEAD":
      self.wfile.write(body)

  def send_error(self, code, message=None, explain=None):
    """The stdlib's own errors (bad request line, headers too long, ...) as JSON too."""
    self.send_json_error(code, message or self.responses.get(code, ("error",))[0])

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    logging.info("%s %s", self.address_string(), format % args)


class BoundedHTTPServer(http.server.HTTPServer):
  """An HTTP server with a thread per connection, at most `max_connections` of them.

  Args:
    address: (host, port); port 0 takes a free one (see `server_address`).
    handler: a `DeadlineHandler` subclass.
    max_connections: connections served at once; one more gets 503 and is closed. The listen
      backlog is at least this (`request_queue_size`).
    request_timeout: seconds a client has to send a whole request.
  """

  daemon_threads = True

  def __init__(
    self,
    address,
    handler,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
  ):
    if max_connections < 1:
      raise ValueError(f"max_connections={max_connections}: must be at least 1")
    if not request_timeout > 0:
      raise ValueError(f"request_timeout={request_timeout}: must be positive")
    self.max_connections = max_connections
    self.request_timeout = float(request_timeout)
    self._connections = threading.BoundedSemaphore(max_connections)
    # listen(2)'s backlog (server_activate, in super().__init__); the kernel caps it at
    # net.core.somaxconn.
    self.request_queue_size = max(max_connections, MIN_LISTEN_BACKLOG)
    super().__init__(address, handler)

  def server_bind(self):
    # HTTPServer.server_bind looks up the host's FQDN (a DNS query that can take seconds); the
    # name is only used in CGI variables, so the address stands in for it.
    self.socket.bind(self.server_address)
    self.server_address = self.socket.getsockname()
    self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

  def process_request(self, request, client_address):
    if not self._connections.acquire(blocking=False):
      self._refuse(request)
      return
    thread = threading.Thread(
      target=self._serve_connection, args=(request, client_address), daemon=True
    )
    try:
      thread.start()
    except RuntimeError:  # no thread to be had: refuse rather than die
      self._connections.release()
      self._refuse(request)

  def _serve_connection(self, request, client_address):
    try:
      self.finish_request(request, client_address)
    except Exception:  # pylint: disable=broad-except
      self.handle_error(request, client_address)
    finally:
      self.shutdown_request(request)
      self._connections.release()

  def _refuse(self, request):
    body = json.dumps(
      {"error": f"too many connections (at most {self.max_connections}); retry later"}
    ).encode()
    try:
      request.settimeout(1.0)
      request.sendall(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
      )
    except OSError:
      pass
    self.shutdown_request(request)

  def shutdown_request(self, request):
    """Closes a connection gracefully: a client still sending (a body refused unread, a slow
    request answered 408) would otherwise get a reset that can destroy the answer."""
    try:
      request.shutdown(socket.SHUT_WR)
      request.settimeout(0.1)
      end, drained = time.monotonic() + 0.5, 0
      while time.monotonic() < end and drained < (1 << 20):
        chunk = request.recv(65536)
        if not chunk:
          break
        drained += len(chunk)
    except OSError:
      pass
    self.close_request(request)

  def handle_error(self, request, client_address):
    logging.warning("connection from %s ended with an error", client_address, exc_info=True)


class Gate:
  """At most `n` holders at once; a caller waits at most `timeout` seconds, else `busy()`."""

  def __init__(self, n: int, timeout: float = DEFAULT_QUEUE_TIMEOUT):
    if n < 1:
      raise ValueError(f"max_concurrent={n}: must be at least 1")
    self._slots = threading.BoundedSemaphore(n)
    self.n = n
    self.timeout = timeout

  def __enter__(self):
    if not self._slots.acquire(timeout=self.timeout):
      raise GateBusy(f"the server is busy ({self.n} requests running); retry later")
    return self

  def __exit__(self, *exc):
    self._slots.release()
    return False


class GateBusy(Exception):
  """No slot within the gate's timeout: the request gets 503."""
