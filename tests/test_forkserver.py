"""The tests' fork server runs a program as a fresh `python ...` would: its argv, working folder,
stdin, stdout, stderr and exit status, in a process of its own."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests import helpers

SERVER = helpers.FORK_SERVER

ECHO = """
import json, os, sys
print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0], "pid": os.getpid(),
                  "stdin": sys.stdin.read(), "main": __name__}))
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


def test_a_c_program_sees_what_python_c_gives_it(tmp_path):
  result = SERVER.run([sys.executable, "-c", ECHO, "3", "x y"], input="lines\n", cwd=tmp_path)
  assert result.returncode == 3
  seen = json.loads(result.stdout)
  assert seen["argv"] == ["-c", "3", "x y"] and seen["main"] == "__main__"
  assert seen["cwd"] == str(tmp_path) and seen["path0"] == "" and seen["stdin"] == "lines\n"
  assert seen["pid"] not in (os.getpid(), SERVER._proc.pid)  # a process of its own
  assert result.stderr == "to stderr\n"
  # The same program in a fresh Python says the same, but for its pid.
  fresh = subprocess.run(
    [sys.executable, "-c", ECHO, "3", "x y"],
    input="lines\n",
    cwd=tmp_path,
    capture_output=True,
    text=True,
    env=helpers.SUBPROCESS_ENV,
  )
  assert fresh.returncode == 3 and fresh.stderr == result.stderr
  assert {**json.loads(fresh.stdout), "pid": 0} == {**seen, "pid": 0}


def test_a_module_a_script_and_a_console_script(tmp_path):
  script = tmp_path / "prog.py"
  script.write_text(ECHO)
  result = SERVER.run([sys.executable, str(script), "0"], cwd=tmp_path)
  seen = json.loads(result.stdout)
  assert result.returncode == 0 and seen["argv"] == [str(script), "0"]
  assert seen["path0"] == str(tmp_path)
  # `-m`: argv[0] is the module's file, as Python sets it.
  result = SERVER.run([sys.executable, "-m", "json.tool", "--sort-keys"], input='{"b": 1, "a": 2}')
  assert result.returncode == 0 and json.loads(result.stdout) == {"a": 2, "b": 1}
  assert result.stdout.index('"a"') < result.stdout.index('"b"')
  # A console script of setup.cfg, by name and by its path in the environment's bin folder.
  for name in ("glow-eval", os.path.join(os.path.dirname(sys.executable), "glow-eval")):
    result = SERVER.run([sys.executable, name, "--no_such_flag"])
    assert result.returncode == 1, result.stderr
    assert "Unknown command line flag 'no_such_flag'" in result.stderr, result.stderr


def test_exit_statuses_exceptions_and_signals():
  assert SERVER.run([sys.executable, "-c", "raise SystemExit('bad thing')"]).returncode == 1
  result = SERVER.run([sys.executable, "-c", "raise SystemExit('bad thing')"])
  assert result.stderr == "bad thing\n"
  result = SERVER.run([sys.executable, "-c", "1 / 0"])
  assert result.returncode == 1 and "ZeroDivisionError" in result.stderr
  killed = SERVER.run([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"])
  assert killed.returncode == -signal.SIGKILL
  with pytest.raises(subprocess.TimeoutExpired):
    SERVER.run([sys.executable, "-c", "import time; time.sleep(60)"], timeout=1)
  assert SERVER.run([sys.executable, "-c", "pass"]).returncode == 0  # and it serves on
  # Exit handlers run, as at an interpreter's exit.
  result = SERVER.run([sys.executable, "-c", "import atexit; atexit.register(print, 'bye')"])
  assert result.returncode == 0 and result.stdout == "bye\n"


def test_other_environments_and_other_programs_start_fresh():
  assert SERVER.can_run([sys.executable, "-c", "pass"])
  assert SERVER.can_run([sys.executable, "-c", "pass"], env=helpers.SUBPROCESS_ENV)
  assert not SERVER.can_run(
    [sys.executable, "-c", "pass"], env={**helpers.SUBPROCESS_ENV, "X": "1"}
  )
  assert not SERVER.can_run(["git", "status"])
