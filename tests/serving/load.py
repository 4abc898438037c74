"""Load against a server process: many clients at once, each request on a new connection.

`ServerProcess` starts glow-serve or glow-demo as the console script on a free port of
127.0.0.1 and reads its resident memory from /proc; `run_clients` has N client threads, released
together, each send its requests one after another, every one on a fresh connection (so the
listen backlog and the connection cap are part of what is measured), and records each answer
or failure with its latency. A reset, a refused or timed-out connection, or a wrong answer is a
failure; `Load.summary` gives the counts, p50 / p99 latency and the figures the tests print.

A listen backlog too small for a burst does not always show as resets: Linux drops the SYNs
that find the accept queue full, and the clients' retransmissions 1, 3, 7 s later make the
connection (50 clients saw resets elsewhere; here the same burst took 28 s instead of 2).
`listen_overflows` reads the kernel's count of those drops, and connections that took a second
or more (a retransmitted SYN) are counted per load.
"""

import dataclasses
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time

import numpy as np

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


class ServerProcess:
  """A glow-serve / glow-demo process; `port` once it listens, `rss_mb()` its resident memory.

  Args:
    program: the console script (glow-serve, glow-demo).
    args: its flags (`--port=0` is added).
    listening: a regular expression of its start-up line holding the port as group 1.
    timeout: seconds to wait for that line (a loaded 2-core machine and a niced test can take
      minutes to import TensorFlow).
  """

  def __init__(self, program: str, args, listening: str, timeout: float = 300.0):
    binary = os.path.join(os.path.dirname(sys.executable), program)
    self.process = subprocess.Popen(
      [binary, *args, "--port=0"],
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      env=ENV,
    )
    # A thread drains the output (a full pipe would stall the server) and hands over its lines.
    self.lines: queue.Queue = queue.Queue()
    threading.Thread(target=self._drain, daemon=True).start()
    self.port = None
    deadline = time.monotonic() + timeout
    seen = []
    while self.port is None:
      try:
        line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
      except queue.Empty:
        line = None
      if line is None:
        self.stop()
        status = self.process.returncode
        raise RuntimeError(
          f"{program} not listening after {timeout:g} s (status {status}): {seen[-20:]}"
        )
      seen.append(line.strip())
      match = re.search(listening, line)
      if match:
        self.port = int(match.group(1))

  def _drain(self):
    for line in self.process.stdout:
      self.lines.put(line)
    self.lines.put(None)  # end of output: the process has gone

  def rss_mb(self) -> float:
    """The process's resident set size now, in MB (VmRSS of /proc/<pid>/status)."""
    with open(f"/proc/{self.process.pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")

  def stop(self) -> None:
    """SIGTERM (the servers shut down on it), then SIGKILL if it lingers."""
    if self.process.poll() is None:
      self.process.terminate()
      try:
        self.process.wait(timeout=15)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()


def listen_overflows() -> int:
  """TcpExt ListenOverflows of /proc/net/netstat: connections any full accept queue dropped."""
  with open("/proc/net/netstat") as f:
    rows = [line.split() for line in f if line.startswith("TcpExt:")]
  return int(dict(zip(rows[0], rows[1]))["ListenOverflows"])


def exchange(port: int, data: bytes, timeout: float, connected=None) -> tuple[int, bytes]:
  """One request on a new connection, read to EOF: (status, body). Resets are not caught.

  `connected`, a list, gets the seconds the connection took to open.
  """
  began = time.monotonic()
  with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
    if connected is not None:
      connected.append(time.monotonic() - began)
    sock.sendall(data)
    chunks = []
    while chunk := sock.recv(65536):
      chunks.append(chunk)
  reply = b"".join(chunks)
  head, _, body = reply.partition(b"\r\n\r\n")
  if not head:
    raise ConnectionError("the server closed the connection without an answer")
  return int(head.split(b" ", 2)[1]), body


@dataclasses.dataclass
class Load:
  """What `run_clients` saw: one latency per answered request, failures by kind."""

  seconds: list[float]
  connect_seconds: list[float]
  failures: dict[str, int]
  wrong: list[str]
  wall: float

  def summary(self) -> dict:
    ms = np.asarray(self.seconds) * 1000
    return {
      "answered": len(ms),
      "failures": dict(self.failures),
      "wrong": len(self.wrong),
      "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
      "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
      "max_ms": float(ms.max()) if len(ms) else None,
      # A SYN dropped by a full accept queue is retransmitted after 1 s.
      "connects_of_1s_or_more": int(np.sum(np.asarray(self.connect_seconds) >= 1.0)),
      "wall_s": self.wall,
      "requests_per_s": len(ms) / self.wall if self.wall else None,
    }


def run_clients(port, request_of, check, clients=100, requests=10, timeout=60.0) -> Load:
  """`clients` threads released at once, each sending `requests` requests in turn.

  Args:
    port: the server's port on 127.0.0.1.
    request_of: (client, i) -> (request bytes, key of its expected answer).
    check: (key, status, body) -> None if the answer is right, else what is wrong.
    clients, requests: the load: clients x requests requests in all.
    timeout: seconds any one socket operation may take.
  """
  seconds, connect_seconds, wrong, failures = [], [], [], {}
  lock = threading.Lock()
  start = threading.Barrier(clients + 1)

  def client(c):
    start.wait()
    for i in range(requests):
      data, key = request_of(c, i)
      began = time.monotonic()
      connected = []
      try:
        status, body = exchange(port, data, timeout, connected)
      except OSError as error:  # ConnectionResetError, refused, timed out, broken pipe
        with lock:
          name = type(error).__name__
          failures[name] = failures.get(name, 0) + 1
        continue
      took = time.monotonic() - began
      problem = check(key, status, body)
      with lock:
        seconds.append(took)
        connect_seconds.extend(connected)
        if problem:
          wrong.append(f"client {c} request {i}: {problem}")

  threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
  for thread in threads:
    thread.start()
  start.wait()
  began = time.monotonic()
  for thread in threads:
    thread.join()
  return Load(seconds, connect_seconds, failures, wrong, time.monotonic() - began)
