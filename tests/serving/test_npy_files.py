"""The .npy / .npz readers of command-line files: a text file is "not a .npy array file".

numpy refused a text file given as --z_a with its advice to "load it unsafely using the
`allow_pickle=` keyword": wrong for a file that is no array, and without the file's name. Each
kind of wrong file is one line starting with its path here; nothing is ever unpickled.
"""

import os

import numpy as np
import pytest

from glow_tf2.serving import npy_files


@pytest.fixture
def files(tmp_path):
  """Files of every kind a flag may be given: {name: path}."""
  paths = {name: str(tmp_path / name) for name in ("text.txt", "codes.npy", "arrays.npz")}
  (tmp_path / "text.txt").write_text("z_a = [1, 2, 3]\n")
  np.save(paths["codes.npy"], np.arange(6, dtype=np.float32).reshape(2, 3))
  np.savez(paths["arrays.npz"], a=np.ones(3), objects=np.array([{"x": 1}], dtype=object))
  paths["objects.npy"] = str(tmp_path / "objects.npy")
  np.save(paths["objects.npy"], np.array([{"x": 1}], dtype=object), allow_pickle=True)
  with open(paths["codes.npy"], "rb") as f:
    whole = f.read()
  paths["short.npy"] = str(tmp_path / "short.npy")
  with open(paths["short.npy"], "wb") as f:
    f.write(whole[: len(whole) - 8])
  paths["empty"] = str(tmp_path / "empty")
  open(paths["empty"], "wb").close()
  paths["folder"] = str(tmp_path)
  paths["missing"] = str(tmp_path / "nope.npy")
  return paths


def _one_line(error) -> str:
  message = str(error.value)
  assert "\n" not in message and "allow_pickle" not in message, message
  return message


@pytest.mark.parametrize(
  "name, expected",
  [
    ("text.txt", "{path}: not a .npy array file"),
    ("empty", "{path}: not a .npy array file"),
    ("arrays.npz", "{path}: not a .npy array file (an .npz archive)"),
    ("objects.npy", "{path}: an array of Python objects, never loaded here"),
    ("short.npy", "{path}: a damaged .npy file (Failed to read all data"),
    ("folder", "{path}: a folder, not a file"),
  ],
)
def test_load_npy_refuses_in_one_line_naming_the_file(files, name, expected):
  with pytest.raises(ValueError) as error:
    npy_files.load_npy(files[name])
  assert _one_line(error).startswith(expected.format(path=files[name]))


def test_load_npy_reads_an_array_and_names_a_missing_file(files):
  np.testing.assert_array_equal(npy_files.load_npy(files["codes.npy"]), np.arange(6).reshape(2, 3))
  with pytest.raises(FileNotFoundError, match=f"^{files['missing']}: no such file$"):
    npy_files.load_npy(files["missing"])


@pytest.mark.parametrize(
  "name, expected",
  [
    ("text.txt", "{path}: not a .npz file of arrays"),
    ("codes.npy", "{path}: not a .npz file of arrays (a single .npy array)"),
    ("folder", "{path}: a folder, not a file"),
  ],
)
def test_open_npz_refuses_in_one_line_naming_the_file(files, name, expected):
  with pytest.raises(ValueError) as error:
    npy_files.open_npz(files[name])
  assert _one_line(error) == expected.format(path=files[name])


def test_open_npz_reads_arrays_but_never_objects(files):
  path = files["arrays.npz"]
  with npy_files.open_npz(path) as data:
    np.testing.assert_array_equal(npy_files.npz_array(data, "a", path), np.ones(3))
    with pytest.raises(ValueError) as error:
      npy_files.npz_array(data, "objects", path)
  assert _one_line(error) == (
    f"{path}: `objects` is an array of Python objects, never loaded here (unpickling can run code)"
  )
  damaged = path + ".cut"
  with open(path, "rb") as f, open(damaged, "wb") as g:
    g.write(f.read()[:40])
  with pytest.raises(ValueError, match=f"^{damaged}: a damaged .npz file"):
    npy_files.open_npz(damaged)
  assert os.path.exists(damaged)
