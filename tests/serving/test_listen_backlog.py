"""The listen backlog of glow-serve's and glow-demo's HTTP server holds a burst of connections.

With the standard library's backlog of 5, a burst of clients connecting at once overflowed the
kernel's accept queue: the kernel dropped their handshakes and clients saw resets (50 clients
against glow-serve: 38 of 200 requests). Here the server is bound but not serving (nobody
accepts), so every connection of a burst must be completed by the kernel's queue alone.
"""

import select
import socket
import time

import pytest

from glow_tf2.demo import server as demo_server
from glow_tf2.serving import httpd


def _completed_connections(port: int, n: int, seconds: float) -> int:
  """Starts `n` connections at once; how many the kernel completed within `seconds`."""
  socks = [socket.socket() for _ in range(n)]
  try:
    for sock in socks:
      sock.setblocking(False)
      sock.connect_ex(("127.0.0.1", port))
    pending, done = set(socks), 0
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline:
      _, writable, _ = select.select([], list(pending), [], deadline - time.monotonic())
      for sock in writable:
        pending.discard(sock)
        done += sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    return done
  finally:
    for sock in socks:
      sock.close()


@pytest.mark.parametrize("max_connections, burst", [(64, 64), (200, 200), (12, 100)])
def test_a_burst_of_connections_waits_in_the_backlog(max_connections, burst):
  server = httpd.BoundedHTTPServer(("127.0.0.1", 0), httpd.DeadlineHandler, max_connections)
  try:
    assert server.request_queue_size >= max_connections
    # 100 beyond a limit of 12: all reach the accept loop, which answers the extra ones 503.
    assert _completed_connections(server.server_address[1], burst, 3.0) == burst
  finally:
    server.server_close()


def test_the_demo_server_is_the_same_bounded_server():
  """glow-demo's server gets its backlog from the shared class, not a setting of its own."""
  assert issubclass(demo_server.DemoServer, httpd.BoundedHTTPServer)
  assert "request_queue_size" not in vars(demo_server.DemoServer)
