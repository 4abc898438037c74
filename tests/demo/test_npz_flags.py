"""A text file given as glow-demo's --examples or --manipulators, or glow-manipulators' --data:
one line naming it ("not a .npz file of arrays"), exit status 1, instead of numpy's advice to
"load it unsafely using the `allow_pickle=` keyword"."""

import numpy as np
import pytest

from glow_tf2.cli import demo as demo_cli
from glow_tf2.cli import manipulators as manipulators_cli


@pytest.fixture
def text_file(tmp_path):
  path = tmp_path / "notes.txt"
  path.write_text("image_a = digits of the test split\n")
  return str(path)


@pytest.mark.parametrize("flag", ["examples", "manipulators"])
def test_glow_demo_refuses_a_text_file(files, text_file, flag, capsys):
  status = demo_cli.main(
    ["glow-demo", f"--saved_model={files['saved_model']}", f"--{flag}={text_file}"]
  )
  assert status == 1
  assert capsys.readouterr().err == f"glow-demo: {text_file}: not a .npz file of arrays\n"


def test_glow_manipulators_refuses_a_text_file(files, text_file, capsys):
  argv = ["glow-manipulators", f"--saved_model={files['saved_model']}", f"--data={text_file}"]
  assert manipulators_cli.main(argv) == 1
  assert capsys.readouterr().err == f"glow-manipulators: {text_file}: not a .npz file of arrays\n"


def test_an_array_of_python_objects_in_the_examples_is_refused_unread(files, tmp_path, capsys):
  path = tmp_path / "examples.npz"
  np.savez(path, image_a=np.array([{"x": 1}], dtype=object), label=np.zeros(1))
  status = demo_cli.main(
    ["glow-demo", f"--saved_model={files['saved_model']}", f"--examples={path}"]
  )
  assert status == 1
  assert capsys.readouterr().err == (
    f"glow-demo: {path}: `image_a` is an array of Python objects, never loaded here "
    "(unpickling can run code)\n"
  )
