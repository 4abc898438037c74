"""run_lock: one writer per run folder, refused writers told the holder's pid, the lock gone with
its process. The holders are real processes (a small Python that loads run_lock.py by its path,
without TensorFlow), the refused writer this one."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from glow_tf2 import run_lock

MODULE = pathlib.Path(run_lock.__file__)

# Holds the lock of argv[1] until killed; says LOCKED once it does.
HOLDER = """
import runpy, sys, time
lock = runpy.run_path(sys.argv[1])["hold"](sys.argv[2], "holder")
print("LOCKED", flush=True)
time.sleep(600)
"""


def start_holder(folder) -> subprocess.Popen:
  proc = subprocess.Popen(
    [sys.executable, "-c", HOLDER, str(MODULE), str(folder)],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  assert proc.stdout.readline().strip() == "LOCKED", proc.stderr.read()
  return proc


def test_a_second_writer_is_refused_at_once_naming_the_pid_and_sigkill_frees_the_lock(tmp_path):
  folder = tmp_path / "run"
  holder = start_holder(folder)
  try:
    record = json.loads((folder / ".lock").read_text())
    assert record["pid"] == holder.pid and record["program"] == "holder"
    began = time.monotonic()
    with pytest.raises(run_lock.FolderInUseError) as refused:
      run_lock.hold(str(folder), "second")
    assert time.monotonic() - began < 0.5  # no waiting for the holder
    message = str(refused.value)
    assert message.startswith(f"{folder} is in use by pid {holder.pid} (holder, since ")
    assert message.endswith("one writer at a time; wait for it to end or use another folder")
    assert "\n" not in message
    # The kernel drops the lock with its process, however it ends: no stale lock to delete.
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
  finally:
    if holder.poll() is None:
      holder.kill()
      holder.wait()
  lock = run_lock.hold(str(folder), "second")
  try:
    assert lock.held and json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
  finally:
    lock.release()


def test_a_released_lock_is_free_for_another_process_and_its_file_stays(tmp_path):
  folder = tmp_path / "run"
  with run_lock.RunLock(str(folder), "first") as lock:
    assert lock.held
  assert not lock.held and (folder / ".lock").exists()  # never removed (see run_lock)
  holder = start_holder(folder)
  try:
    assert json.loads((folder / ".lock").read_text())["pid"] == holder.pid
  finally:
    holder.kill()
    holder.wait()


def test_flock_belongs_to_an_open_file_so_a_process_locking_twice_refuses_itself(tmp_path):
  first = run_lock.hold(str(tmp_path), "first")
  try:
    assert first.acquire() is first  # taking a held lock again is a no-op
    with pytest.raises(run_lock.FolderInUseError, match=f"in use by pid {os.getpid()} "):
      run_lock.hold(str(tmp_path), "again")
  finally:
    first.release()


def test_a_file_where_the_folder_should_be_is_an_os_error(tmp_path):
  path = tmp_path / "a_file"
  path.write_text("not a folder")
  with pytest.raises(FileExistsError):
    run_lock.hold(str(path), "writer")
  assert path.read_text() == "not a folder"


def test_a_holder_that_has_not_written_its_pid_yet_is_named_as_such(tmp_path):
  (tmp_path / ".lock").write_text("")
  assert run_lock.holder(str(tmp_path), wait=0.1) == {}
  assert run_lock.describe({}) == "another process (its pid not yet written)"


def test_a_remote_folder_is_used_unlocked_without_making_a_local_folder(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  lock = run_lock.hold("gs://bucket/run", "writer")
  assert not lock.held and os.listdir(tmp_path) == []
