"""The atomic folder writer replaces only what its caller allows: by default an empty folder.

Replacing is deleting: a folder of someone's files given as the target must survive the write,
and the refusal must say what the folder holds. The check runs before the fill (nothing is
written for a write that cannot happen) and again just before the swap.
"""

import os

import pytest

from glow_tf2 import atomic_dir


def _fill_with(name, text="new"):
  def fill(folder):
    with open(os.path.join(folder, name), "w") as f:
      f.write(text)

  return fill


def test_a_new_folder_is_written(tmp_path):
  target = atomic_dir.write_directory(str(tmp_path / "out"), _fill_with("a.txt"))
  assert os.listdir(target) == ["a.txt"]
  assert sorted(os.listdir(tmp_path)) == ["out"]


def test_an_empty_folder_is_replaced(tmp_path):
  (tmp_path / "out").mkdir()
  atomic_dir.write_directory(str(tmp_path / "out"), _fill_with("a.txt"))
  assert os.listdir(tmp_path / "out") == ["a.txt"]
  assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_folder_of_other_files_is_refused_by_default_and_kept(tmp_path):
  target = tmp_path / "notamodel"
  (target / "1").mkdir(parents=True)
  (target / "1" / "saved_model.pb").write_bytes(b"pb")
  (target / "important.txt").write_text("keep me")
  filled = []
  with pytest.raises(FileExistsError) as error:
    atomic_dir.write_directory(str(target), filled.append)
  message = str(error.value)
  assert "not empty" in message and "1/, important.txt" in message and "\n" not in message
  assert filled == []  # refused before anything was written
  assert (target / "important.txt").read_text() == "keep me"
  assert (target / "1" / "saved_model.pb").read_bytes() == b"pb"
  assert sorted(os.listdir(tmp_path)) == ["notamodel"]  # no temporary left


def test_a_file_is_never_replaced(tmp_path):
  (tmp_path / "out").write_text("a file")
  with pytest.raises(FileExistsError, match="is not a folder"):
    atomic_dir.write_directory(str(tmp_path / "out"), _fill_with("a.txt"), lambda path: None)
  assert (tmp_path / "out").read_text() == "a file"


def test_the_callers_check_decides(tmp_path):
  target = tmp_path / "out"
  target.mkdir()
  (target / "ours.marker").write_text("old")
  seen = []

  def ours_only(path):
    seen.append(path)
    if not os.path.exists(os.path.join(path, "ours.marker")):
      raise FileExistsError(f"{path}: not ours")

  atomic_dir.write_directory(str(target), _fill_with("ours.marker", "new"), ours_only)
  assert (target / "ours.marker").read_text() == "new"
  assert seen == [str(target), str(target)]  # before the fill and before the swap
  (target / "ours.marker").unlink()
  (target / "theirs.txt").write_text("theirs")
  with pytest.raises(FileExistsError, match="not ours"):
    atomic_dir.write_directory(str(target), _fill_with("ours.marker"), ours_only)
  assert os.listdir(target) == ["theirs.txt"]


def test_files_that_arrive_during_the_fill_are_not_replaced(tmp_path):
  """The fill may take minutes; what someone put in the empty target meanwhile is kept."""
  target = tmp_path / "out"
  target.mkdir()

  def slow_fill(folder):
    (target / "arrived.txt").write_text("meanwhile")
    _fill_with("a.txt")(folder)

  with pytest.raises(FileExistsError, match="arrived.txt"):
    atomic_dir.write_directory(str(target), slow_fill)
  assert os.listdir(target) == ["arrived.txt"]
  assert sorted(os.listdir(tmp_path)) == ["out"]  # the temporary folder is gone


def test_describe_contents_names_a_few_and_counts_the_rest(tmp_path):
  assert atomic_dir.describe_contents(str(tmp_path)) == "nothing"
  for i in range(9):
    (tmp_path / f"f{i}").write_text("x")
  (tmp_path / "d").mkdir()
  assert atomic_dir.describe_contents(str(tmp_path), limit=3) == "d/, f0, f1 and 7 more"
