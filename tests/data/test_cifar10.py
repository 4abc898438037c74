"""`glow-data --source=cifar10` from CIFAR-10 binary files written here in their exact format
(1 label byte + 1024 red + 1024 green + 1024 blue bytes per record), then `--problem=cifar10`."""

import os
import subprocess
import sys

import numpy as np
import pytest

from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.input.records import DataError
from glow_tf2_data import generate
from tests.helpers import box2
from tests.helpers import key
from tests.helpers import photo_patches
from tests.helpers import read_records

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_bin(path, images, labels):
  """The CIFAR-10 binary layout, byte by byte: label, then the R, G and B planes row-major."""
  with open(path, "wb") as handle:
    for image, label in zip(images, labels):
      handle.write(bytes([int(label)]))
      for channel in range(3):
        handle.write(image[:, :, channel].tobytes())


@pytest.fixture
def cifar(tmp_path):
  """cifar-10-batches-bin/ with 5 training files of 4 images and a test file of 5."""
  folder = tmp_path / "cifar-10-batches-bin"
  folder.mkdir()
  rng = np.random.default_rng(0)
  images = photo_patches(25, 32, seed=11)
  labels = rng.integers(0, 10, 25)
  for i in range(5):
    write_bin(
      folder / f"data_batch_{i + 1}.bin", images[4 * i : 4 * i + 4], labels[4 * i : 4 * i + 4]
    )
  write_bin(folder / "test_batch.bin", images[20:], labels[20:])
  (folder / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n\n")
  return tmp_path, images, labels


def test_binary_files_round_trip(cifar):
  root, images, labels = cifar
  out = root / "out"
  assert generate.generate("cifar10", str(out), input=str(root), shards=3)
  for split, sl in (("train", slice(0, 20)), ("validation", slice(20, 25))):
    got = read_records(str(out), split)
    assert sorted((key(g["data"]), g["label"]) for g in got) == sorted(
      (key(x), int(y)) for x, y in zip(images[sl], labels[sl])
    )
  problem = problems.get_problem("cifar10", data_dir=str(out))
  assert (problem.n_classes, problem.n_train, problem.n_test) == (10, 20, 5)
  assert problem.image_shape == (32, 32, 3)
  # Glow's --dal 2 on it: batches keep their shape and labels, pixels change.
  batch = next(iter(input_pipeline.make_dataset(problem, "train", 20, dal=2, seed=3)))
  assert batch["image_a"].shape == (20, 32, 32, 3)
  plain = next(iter(input_pipeline.make_dataset(problem, "train", 20, dal=0, seed=3)))
  np.testing.assert_array_equal(batch["label"], plain["label"])
  assert not np.array_equal(batch["image_a"], plain["image_a"])


def test_smaller_size_is_the_box_downsampling(cifar):
  root, images, labels = cifar
  assert generate.generate(
    "cifar10", str(root / "out16"), input=str(root / "cifar-10-batches-bin"), image_size=16
  )
  got = read_records(str(root / "out16"), "validation")
  assert sorted(key(g["data"]) for g in got) == sorted(key(box2(x)) for x in images[20:])


def test_cli_writes_the_set(cifar):
  root, _, _ = cifar
  cli = os.path.join(os.path.dirname(sys.executable), "glow-data")
  result = subprocess.run(
    [cli, "--source=cifar10", f"--input={root}", f"--output={root / 'cli'}"],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert problems.get_problem("cifar10", data_dir=str(root / "cli")).n_train == 20


def test_bad_inputs_name_the_file(cifar, tmp_path):
  root, _, _ = cifar
  folder = root / "cifar-10-batches-bin"
  with open(folder / "data_batch_3.bin", "ab") as handle:
    handle.write(b"\0" * 10)
  with pytest.raises(DataError, match=r"data_batch_3\.bin: 12302 bytes, not a whole number"):
    generate.generate("cifar10", str(tmp_path / "o1"), input=str(root))
  os.remove(folder / "data_batch_3.bin")
  with pytest.raises(DataError, match=r"data_batch_3\.bin: missing CIFAR-10 batch file"):
    generate.generate("cifar10", str(tmp_path / "o2"), input=str(root))
  py = tmp_path / "py" / "cifar-10-batches-py"
  py.mkdir(parents=True)
  (py / "data_batch_1").write_bytes(b"\x80\x02}q\x00.")
  with pytest.raises(DataError, match="pickled Python version"):
    generate.generate("cifar10", str(tmp_path / "o3"), input=str(tmp_path / "py"))
  assert not os.path.exists(tmp_path / "o1" / "train")
