"""One writer per run folder: an exclusive OS lock on `<folder>/.lock`, held while a process runs.

Two glow-train processes in one --logdir would interleave their checkpoints and truncate each
other's logs, so the writer of a run folder (glow-train's chief; glow-eval when it writes its
report there) holds this lock for as long as it writes, and a second writer is refused at once
with one line naming the holder's pid.

The lock is `fcntl.flock` on a file, not a file whose existence is the lock: the kernel drops it
when its process ends however it ends (SIGKILL, a crash), so a killed run never leaves a stale
lock for a person to delete. For the same reason the file is never removed: a writer that
unlinked it could let the next two lock two different files of one name. After locking, the
holder writes its pid, host and program into the file; the content only serves the refusal
message, it decides nothing.

flock locks an open file description, not a process: the same process opening the file twice
is refused by itself, so a process takes the lock once (`hold`) and releases it when done.
On NFSv4 Linux turns flock into a lock the server arbitrates, so writers on two hosts exclude
each other too; a file system without locks (some FUSE mounts) makes flock fail with ENOLCK or
EOPNOTSUPP, and the folder is then used unlocked, with a warning, as is a folder TensorFlow
reaches by URL (gs://, s3://, ...).
"""

import errno
import fcntl
import json
import os
import socket
import time

from absl import logging

LOCK_FILE = ".lock"
# How long a refused writer waits for the holder to write its pid (it locks, then writes).
PID_WAIT_SECONDS = 1.0


class FolderInUseError(OSError):
  """Another process holds the folder's lock; the message names its pid."""


class RunLock:
  """The exclusive lock of one run folder (created if missing).

  Args:
    folder: the run folder.
    program: what holds it, for the refusal message of the next writer ("glow-train").

  Use `acquire()` / `release()`, or `with RunLock(folder, program):`.
  """

  def __init__(self, folder: str, program: str):
    self.folder = folder
    self.program = program
    self.path = os.path.join(folder, LOCK_FILE)
    self._fd = None

  @property
  def held(self) -> bool:
    return self._fd is not None

  def acquire(self) -> "RunLock":
    """Takes the lock without waiting.

    Raises:
      FolderInUseError: another process holds it (the message names its pid).
      OSError: the folder cannot be made (e.g. a file is in the way).
    """
    if self._fd is not None:
      return self
    if "://" in self.folder:
      logging.warning("%s: no OS locks on a remote file system; writing unlocked", self.folder)
      return self
    os.makedirs(self.folder, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
        raise FolderInUseError(
          f"{self.folder} is in use by {describe(holder(self.folder))}: one writer at a time; "
          "wait for it to end or use another folder"
        ) from None
      if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
        logging.warning("%s: no locks on this file system (%s); writing unlocked", self.path, e)
        return self
      raise
    record = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "program": self.program,
      "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    self._fd = fd
    return self

  def release(self) -> None:
    """Drops the lock (closing the file drops it; the file stays, see the module docstring)."""
    if self._fd is not None:
      fd, self._fd = self._fd, None
      os.close(fd)

  def __enter__(self) -> "RunLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def hold(folder: str, program: str) -> RunLock:
  """`RunLock(folder, program).acquire()`: the lock, held until released or the process ends."""
  return RunLock(folder, program).acquire()


def holder(folder: str, wait: float = PID_WAIT_SECONDS) -> dict:
  """What the lock file of `folder` says of its holder ({} if nothing readable).

  The holder writes its record just after locking, so a reader that finds the file empty waits
  up to `wait` seconds for it.
  """
  deadline = time.monotonic() + wait
  while True:
    try:
      with open(os.path.join(folder, LOCK_FILE)) as f:
        record = json.loads(f.read() or "null")
      if isinstance(record, dict) and "pid" in record:
        return record
    except (OSError, ValueError):
      pass
    if time.monotonic() >= deadline:
      return {}
    time.sleep(0.05)


def describe(record: dict) -> str:
  """'pid 123 (glow-train on host h, since ...)' of a `holder` record."""
  if not record:
    return "another process (its pid not yet written)"
  where = f" on host {record['host']}" if record.get("host") != socket.gethostname() else ""
  program = record.get("program", "a process")
  since = f", since {record['since']}" if record.get("since") else ""
  return f"pid {record['pid']} ({program}{where}{since})"
