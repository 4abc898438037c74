"""Writing a folder atomically: in a temporary sibling named by the writer's pid, renamed into place.

A reader never sees half a folder: `write_directory(target, fill)` has `fill` write into
`<target>.tmp-<pid>-<random>` next to `target`, gives it the permissions of any new folder and
renames it into place (an existing `target` is first moved aside to `<target>.old-<pid>-*` and
removed after). The pid in the temporary names lets a later writer tell a live writer's folder
from what a killed one left: `remove_stale_temporaries` removes the latter, and `pid_alive` is
the check (the TFRecord writer of `input/writer.py` names its temporary files the same way).

Replacing is deleting, so an existing `target` is replaced only when the caller's
`check_replaceable` accepts it (by default: only an empty folder). A mistyped path, say a model
base folder instead of one of its versions, is then refused naming what it holds
(`describe_contents`), instead of being removed with everything in it.
"""

from collections.abc import Callable
import os
import shutil
import tempfile
import time

# A temporary folder older than this is stale even if its pid is alive (pids are reused).
STALE_AFTER_SECONDS = 24 * 3600


def pid_alive(pid: int) -> bool:
  """Whether process `pid` runs on this host (another user's live process counts)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # another user's live process
  return True


def remove_stale_temporaries(
  target: str, max_age: float = STALE_AFTER_SECONDS, now: float | None = None
) -> list[str]:
  """Removes what killed writers of `target` left: `<name>.tmp-<pid>-*` and `.old-<pid>-*`.

  A folder is stale when its writer's pid is no longer running (on this host) or when it is
  older than `max_age` seconds (a pid can be reused; a name without a pid, from an older
  version, is judged by age only). A live writer's folder is left alone.

  Returns:
    The folders removed.
  """
  target = os.path.abspath(target)
  parent, base = os.path.dirname(target), os.path.basename(target)
  now = time.time() if now is None else now
  removed = []
  try:
    names = os.listdir(parent)
  except FileNotFoundError:
    return removed
  for name in names:
    for kind in (".tmp-", ".old-"):
      if not name.startswith(base + kind):
        continue
      path = os.path.join(parent, name)
      pid_text = name[len(base + kind) :].split("-", 1)[0]
      try:
        age = now - os.lstat(path).st_mtime
      except FileNotFoundError:
        continue
      dead = pid_text.isdigit() and not pid_alive(int(pid_text))
      if (dead or age > max_age) and os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
  return removed


def _umask() -> int:
  """The process's umask (read from /proc where it can be, without changing it)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except OSError:
    pass
  mask = os.umask(0o022)  # elsewhere: set and restore (a brief window for other threads)
  os.umask(mask)
  return mask


def _normal_permissions(root: str) -> None:
  """0777 folders and 0666 files minus the umask (mkdtemp made the root 0700)."""
  mask = _umask()
  os.chmod(root, 0o777 & ~mask)
  for folder, dirs, files in os.walk(root):
    for name in dirs:
      os.chmod(os.path.join(folder, name), 0o777 & ~mask)
    for name in files:
      path = os.path.join(folder, name)
      if not os.path.islink(path):
        os.chmod(path, 0o666 & ~mask)


def describe_contents(folder: str, limit: int = 6) -> str:
  """What a folder holds, for a message: 'important.txt, 1/, 2/' (folders end in '/').

  At most `limit` names, sorted, then how many more; "nothing" for an empty folder.
  """
  try:
    names = sorted(os.listdir(folder))
  except OSError as error:
    return f"unreadable ({error.strerror or error})"
  if not names:
    return "nothing"
  shown = [n + "/" if os.path.isdir(os.path.join(folder, n)) else n for n in names[:limit]]
  more = f" and {len(names) - limit} more" if len(names) > limit else ""
  return ", ".join(shown) + more


def require_empty(target: str) -> None:
  """The default `check_replaceable`: only an empty folder may be replaced."""
  if os.listdir(target):
    raise FileExistsError(
      f"{target} is not empty (it holds {describe_contents(target)}): refusing to replace it"
    )


def _check_target(target: str, check_replaceable: Callable[[str], None]) -> None:
  """Raises FileExistsError unless `target` is missing or a folder the check accepts."""
  if not os.path.lexists(target):
    return
  if not os.path.isdir(target):
    raise FileExistsError(f"{target} exists and is not a folder: refusing to replace it")
  check_replaceable(target)


def write_directory(
  target: str,
  fill: Callable[[str], None],
  check_replaceable: Callable[[str], None] = require_empty,
) -> str:
  """Creates (or replaces) the folder `target` with what `fill(folder)` writes, atomically.

  What killed writers left next to `target` is removed first (`remove_stale_temporaries`).
  `fill` writes into an empty temporary folder beside `target`; the result gets the
  permissions of any new folder (0755 folders and 0644 files under the usual umask 022, not
  mkdtemp's 0700), so that a process of another user can read it, and is renamed into place.
  If `fill` raises, the temporary folder is removed and an existing `target` is untouched.

  An existing `target` is checked twice: before `fill` (nothing is computed for a write that
  cannot happen) and again just before the swap (`fill` may take minutes, and someone may have
  put files there meanwhile).

  Args:
    target: the folder to write; its parent is created if missing.
    fill: writes the folder's contents into the folder it is given.
    check_replaceable: called with an existing `target` folder; raises FileExistsError (a
      one-line message naming what is there) if it must not be replaced. By default only an
      empty folder may be.

  Returns:
    The absolute path of `target`.

  Raises:
    FileExistsError: `target` exists and is a file, or a folder `check_replaceable` refuses.
  """
  target = os.path.abspath(target)
  parent = os.path.dirname(target)
  _check_target(target, check_replaceable)
  os.makedirs(parent, exist_ok=True)
  remove_stale_temporaries(target)
  # The pid in the name tells a later writer whether this one is still running.
  base = os.path.basename(target)
  tmp = tempfile.mkdtemp(prefix=f"{base}.tmp-{os.getpid()}-", dir=parent)
  try:
    fill(tmp)
    _normal_permissions(tmp)
    _check_target(target, check_replaceable)
    if os.path.lexists(target):
      old = tempfile.mkdtemp(prefix=f"{base}.old-{os.getpid()}-", dir=parent)
      os.rename(target, os.path.join(old, "previous"))
      os.rename(tmp, target)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.rename(tmp, target)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return target
