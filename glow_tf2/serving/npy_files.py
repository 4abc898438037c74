""".npy and .npz files named on a command line, read without unpickling, refused in one line.

`np.load(path, allow_pickle=False)` refuses a text file given as `--z_a` (or an .npz flag) with
numpy's own advice, to "load it unsafely using the `allow_pickle=` keyword": the wrong advice for
a file that is no array at all, and a message without the file's name. These readers look at the
file's first bytes first (`\\x93NUMPY` for .npy, a zip header for .npz), so a file of another
kind is "<path>: not a .npy array file"; an array of pickled Python objects is refused as such
(unpickling can run code); a damaged file says what numpy found. Every error is a one-line
`ValueError` (`FileNotFoundError` for a missing file) starting with the path, for a binary to
print after its name. glow-eval (`--z_a`, `--z_b`) and glow-demo / glow-manipulators
(`--examples`, `--manipulators`, `--data`) read their arrays here.
"""

import zipfile

import numpy as np

NPY_MAGIC = b"\x93NUMPY"
NPZ_MAGIC = b"PK\x03\x04"  # an .npz is a zip archive of .npy files


def _first_bytes(path: str, n: int) -> bytes:
  try:
    with open(path, "rb") as f:
      return f.read(n)
  except FileNotFoundError:
    raise FileNotFoundError(f"{path}: no such file") from None
  except IsADirectoryError:
    raise ValueError(f"{path}: a folder, not a file") from None
  except OSError as error:
    raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None


def _reason(error: Exception) -> str:
  return (str(error).splitlines() or [type(error).__name__])[0][:200]


def load_npy(path: str) -> np.ndarray:
  """The array of the .npy file `path`, never unpickled.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a .npy file, an array of Python objects, or a damaged file (one line).
  """
  head = _first_bytes(path, len(NPY_MAGIC))
  if head != NPY_MAGIC:
    kind = " (an .npz archive)" if head.startswith(NPZ_MAGIC) else ""
    raise ValueError(f"{path}: not a .npy array file{kind}")
  try:
    return np.load(path, allow_pickle=False)
  except ValueError as error:
    if "allow_pickle" in str(error):
      raise ValueError(
        f"{path}: an array of Python objects, never loaded here (unpickling can run code)"
      ) from None
    raise ValueError(f"{path}: a damaged .npy file ({_reason(error)})") from None
  except (OSError, EOFError) as error:
    raise ValueError(f"{path}: a damaged .npy file ({_reason(error)})") from None


def open_npz(path: str):
  """The `np.lib.npyio.NpzFile` of the .npz file `path`, whose arrays are never unpickled.

  An array of Python objects in it raises numpy's ValueError when read (`npz_array` names it).

  Raises:
    FileNotFoundError: no such file.
    ValueError: not an .npz file, or a damaged one (one line).
  """
  head = _first_bytes(path, len(NPY_MAGIC))
  if not head.startswith(NPZ_MAGIC):
    kind = " (a single .npy array)" if head == NPY_MAGIC else ""
    raise ValueError(f"{path}: not a .npz file of arrays{kind}")
  try:
    return np.load(path, allow_pickle=False)
  except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
    raise ValueError(f"{path}: a damaged .npz file ({_reason(error)})") from None


def npz_array(data, key: str, path: str) -> np.ndarray:
  """`data[key]` of an open .npz; an array of Python objects or a damaged one in one line."""
  try:
    return data[key]
  except ValueError as error:
    if "allow_pickle" in str(error):
      raise ValueError(
        f"{path}: `{key}` is an array of Python objects, never loaded here "
        "(unpickling can run code)"
      ) from None
    raise ValueError(f"{path}: `{key}` is damaged ({_reason(error)})") from None
  except (zipfile.BadZipFile, OSError, EOFError) as error:
    raise ValueError(f"{path}: `{key}` is damaged ({_reason(error)})") from None
