"""Python programs of the tests started by forking one warm process instead of a fresh Python.

A fresh `python -m glow_tf2.cli.train ...` spends 7-9 s of a core importing TensorFlow before it
does anything; the suite starts dozens of such programs. The server (one per test process,
started on first use) imports TensorFlow, TFP, Keras and glow_tf2's library once, runs no op
(TensorFlow is fork-safe up to its first op), and forks a child per program. The child is a
process of its own, with its own pid, exit status and signals, fds 0, 1 and 2 on files of its
own, the working directory and `sys.argv` the program would have had, and runs the program as
Python would: `-c CODE`, `-m MODULE`, a script's path, or a console script of setup.cfg by name
or by its path in the environment's bin folder.

What a child does not share with a fresh process: modules the server imported are not imported
again (the binaries' own `cli/` modules, which define absl flags when imported, never are), the
environment TensorFlow read at import is the server's (so a program run with other variables
goes to a fresh process: `ForkServer.can_run`), and TensorFlow's start-up banners were hidden,
as a binary's quiet start-up hides them (tests/cli/test_quiet.py checks the real start-up). Every
child runs without Grappler on the CPU, as the binaries and this test process do
(`glow_tf2.grappler`).
"""

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time

_SERVER = r"""
import atexit, importlib.metadata, json, os, runpy, sys, traceback
from glow_tf2 import quiet
quiet.import_tensorflow(verbose=False)
import keras, numpy, tensorflow as tf, tensorflow_probability as tfp
tfp.bijectors, tfp.distributions  # TFP loads its modules lazily
import glow_tf2
from glow_tf2.pair import loading
from glow_tf2.quality import judge
from glow_tf2.serving import export
from glow_tf2.train import loop
from glow_tf2 import grappler
grappler.skip_on_cpu()
SCRIPTS = {e.name: e for e in importlib.metadata.entry_points(group="console_scripts")}
BIN = os.path.dirname(sys.executable)
reply = os.fdopen(os.dup(1), "w")
requests = os.fdopen(os.dup(0), "r")


def program(argv):
  # (sys.argv, sys.path[0], the callable that runs it), as `python ARGV` would have them.
  if argv[0] == "-c":
    code = compile(argv[1], "<string>", "exec")
    return ["-c", *argv[2:]], "", lambda: exec(code, {"__name__": "__main__"})
  if argv[0] == "-m":
    return argv[1:], os.getcwd(), lambda: runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
  name = os.path.basename(argv[0])
  if name in SCRIPTS and (argv[0] == name or os.path.dirname(argv[0]) == BIN):
    return argv, BIN, lambda: sys.exit(SCRIPTS[name].load()())
  path = os.path.abspath(argv[0])
  return argv, os.path.dirname(path), lambda: runpy.run_path(path, run_name="__main__")


def child(request):
  code = 1
  try:  # whatever happens, the child never returns into the server's loop
    os.chdir(request["cwd"])
    os.dup2(os.open(request["stdin"], os.O_RDONLY), 0)
    for fd, name in ((1, "stdout"), (2, "stderr")):
      os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    reply.close()
    requests.close()
    sys.argv, sys.path[0], run = program(request["argv"])
    run()
    code = 0
  except SystemExit as e:  # what the interpreter does with sys.exit's argument
    code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
    if not isinstance(e.code, (int, type(None))):
      print(e.code, file=sys.stderr)
  except BaseException:
    traceback.print_exc()
  finally:
    try:
      atexit._run_exitfuncs()  # what the interpreter runs at exit; os._exit below would not
    except BaseException:
      pass
    for stream in (sys.stdout, sys.stderr):
      try:
        stream.flush()
      except (OSError, ValueError):  # a program may close them, as json.tool closes stdout
        pass
    os._exit(code)


print("READY", file=reply, flush=True)
for line in requests:
  request = json.loads(line)
  sys.stdout.flush()
  sys.stderr.flush()
  pid = os.fork()
  if pid == 0:
    child(request)
  print(json.dumps({"pid": pid}), file=reply, flush=True)
  _, status = os.waitpid(pid, 0)
  print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), file=reply, flush=True)
"""


class ForkServer:
  """One warm Python (see the module docstring) and the programs forked from it, one at a time."""

  def __init__(self, env: dict):
    self.env = dict(env)
    self._proc = None
    self._buffer = b""  # what the server wrote past its last line read
    self._lock = threading.Lock()

  def can_run(self, args, env=None) -> bool:
    """Whether `args` (a `python ...` command line) runs here as it would in a fresh process."""
    return (
      len(args) >= 2
      and args[0] == sys.executable
      and (env is None or dict(env) == self.env)
      and os.environ.get("GLOW_TF2_TESTS_FORK", "1") != "0"
    )

  def _start(self):
    self._proc = subprocess.Popen(
      [sys.executable, "-c", _SERVER],
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL,
      env=self.env,
    )
    self._buffer = b""
    line = self._read(120)
    if line != "READY":
      raise RuntimeError(f"the fork server did not start: {line!r}")

  def _read(self, timeout: float) -> str:
    """The server's next line ("" after `timeout` seconds or at its end)."""
    deadline = time.monotonic() + timeout
    fd = self._proc.stdout.fileno()
    while b"\n" not in self._buffer:
      left = deadline - time.monotonic()
      if left <= 0 or not select.select([fd], [], [], left)[0]:
        return ""
      chunk = os.read(fd, 65536)
      if not chunk:
        return ""
      self._buffer += chunk
    line, self._buffer = self._buffer.split(b"\n", 1)
    return line.decode().strip()

  def run(self, args, timeout=480, input=None, cwd=None) -> subprocess.CompletedProcess:
    """`subprocess.run(args, capture_output=True, text=True)` for `python ...` command lines."""
    with self._lock, tempfile.TemporaryDirectory(prefix="forked-") as tmp:
      if self._proc is None or self._proc.poll() is not None:
        self._start()
      paths = {name: os.path.join(tmp, name) for name in ("stdin", "stdout", "stderr")}
      with open(paths["stdin"], "w") as f:
        f.write(input or "")
      request = {"argv": list(map(str, args[1:])), "cwd": str(cwd or os.getcwd()), **paths}
      self._proc.stdin.write((json.dumps(request) + "\n").encode())
      self._proc.stdin.flush()
      started = self._read(60)
      if not started:
        raise RuntimeError(f"the fork server stopped before starting {args[1:3]}")
      pid = json.loads(started)["pid"]
      line = self._read(timeout)
      if not line:
        os.kill(pid, 9)
        self._read(60)
        raise subprocess.TimeoutExpired(args, timeout)
      status = json.loads(line)["status"]
      with open(paths["stdout"]) as out, open(paths["stderr"]) as err:
        return subprocess.CompletedProcess(list(args), status, out.read(), err.read())

  def close(self):
    if self._proc is not None and self._proc.poll() is None:
      self._proc.stdin.close()
      try:
        self._proc.wait(timeout=30)
      except subprocess.TimeoutExpired:
        self._proc.kill()
