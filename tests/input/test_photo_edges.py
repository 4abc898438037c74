"""photo_edges64: edges <-> photo crops at 64x64 from scikit-image's bundled photos, loaded with
no network; the held-out region, the levels, the edges and the pairs checked against code
written here; the problem built once like the other embedded ones."""

import importlib
import os
import socket

import numpy as np
from PIL import Image
import pytest
from skimage.feature import canny

from glow_tf2.input import embedded
from glow_tf2.input import photo_edges
from glow_tf2.input import problems
from glow_tf2.input.records import DataError
from glow_tf2_data import generate
from tests.helpers import box2
from tests.helpers import key
from tests.helpers import listing
from tests.helpers import read_records


def test_every_photo_loads_without_the_network(monkeypatch):
  def refuse(*args, **kwargs):
    raise OSError("no network in this test")

  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(socket, "create_connection", refuse)
  # No download path at all, and a file that would need one fails here instead of skipping.
  fetchers = importlib.import_module("skimage.data._fetchers")
  monkeypatch.setattr(fetchers, "_image_fetcher", None)
  monkeypatch.setattr(fetchers, "_skip_pytest_case_requiring_pooch", lambda name: None)
  shapes = {name: photo_edges.load_photo(name).shape for name in photo_edges.PHOTOS}
  assert shapes == {
    "astronaut": (512, 512, 3),
    "chelsea": (300, 451, 3),
    "coffee": (400, 600, 3),
    "rocket": (427, 640, 3),
    "motorcycle": (500, 741, 3),
  }


def _luma(photo):
  return np.asarray(Image.fromarray(photo).convert("L"))


def test_levels_halve_the_photo_and_keep_the_held_out_quarter_in_place():
  photo = photo_edges.load_photo("coffee")  # 400 x 600
  levels = photo_edges.levels(photo)
  assert [(lv.image.shape, lv.boundary) for lv in levels] == [
    ((400, 600, 4), 448),
    ((200, 300, 4), 224),
  ]  # a third level (100 x 150) has a held-out region of 38 columns: no crop fits
  np.testing.assert_array_equal(levels[0].image[..., :3], photo)
  np.testing.assert_array_equal(levels[1].image[..., :3], box2(photo))
  for level in levels:
    edges = canny(_luma(level.image[..., :3]) / 255, sigma=2)
    np.testing.assert_array_equal(level.image[..., 3], np.where(edges, 255, 0))
    assert 0.01 < edges.mean() < 0.2


def _position_level(height, width, boundary):
  """A level whose pixels say where they are: channel 0 the column // 256, 1 the column % 256,
  2 the row."""
  rows, cols = np.mgrid[:height, :width]
  image = np.stack([cols // 256, cols % 256, rows, np.zeros_like(rows)], -1).astype(np.uint8)
  return photo_edges.Level(image, boundary)


def test_crops_lie_wholly_in_their_split_and_only_training_crops_flip():
  level = _position_level(100, 300, 200)
  for split, n in (("train", 400), ("validation", 100)):
    cut = photo_edges.crops([level], split, n, seed=3)
    assert cut.shape == (n, 64, 64, 4)
    columns = cut[..., 0].astype(int) * 256 + cut[..., 1]
    steps = np.diff(columns, axis=2)
    flipped = (steps == -1).all(axis=(1, 2))
    assert (flipped | (steps == 1).all(axis=(1, 2))).all()  # whole crops, as cut or mirrored
    assert (np.diff(cut[..., 2].astype(int), axis=1) == 1).all()  # never upside down
    if split == "train":
      assert columns.max() < 200 and 0.4 < flipped.mean() < 0.6
    else:
      assert columns.min() >= 200 and columns.max() < 300 and not flipped.any()
    assert len({key(c) for c in cut}) > 0.9 * n  # spread over the region, not one place
  np.testing.assert_array_equal(cut, photo_edges.crops([level], "validation", 100, seed=3))


def test_pairs_are_black_edges_on_white_and_the_photo():
  cut = photo_edges.splits()["validation"][:50]
  a, b = photo_edges.pairs(cut, 3)
  assert a.shape == b.shape == (50, 64, 64, 3) and a.dtype == b.dtype == np.uint8
  np.testing.assert_array_equal(a, np.repeat(np.where(cut[..., 3:] == 255, 0, 255), 3, -1))
  np.testing.assert_array_equal(b, cut[..., :3])
  assert set(np.unique(a)) == {0, 255} and 0.005 < (a == 0).mean() < 0.2
  a1, b1 = photo_edges.pairs(cut, 1)
  np.testing.assert_array_equal(a1, a[..., :1])
  np.testing.assert_array_equal(b1[..., 0], np.stack([_luma(p) for p in b]))


def test_the_set_holds_the_pairs_of_the_seeded_crops(tmp_path):
  assert generate.generate("photo_edges64", str(tmp_path), limit=120)
  cut = photo_edges.splits()
  for split in ("train", "validation"):
    a, b = photo_edges.pairs(cut[split][:120], 3)
    got = read_records(str(tmp_path), split, res_log2=6)
    assert len(got) == 120 and all(g["label"] == 0 for g in got)
    assert sorted(key(g["data_a"], g["data_b"]) for g in got) == sorted(
      key(x, y) for x, y in zip(a, b)
    )
  train = {key(g["data_b"]) for g in read_records(str(tmp_path), "train")}
  assert not train & {key(g["data_b"]) for g in read_records(str(tmp_path), "validation")}


def test_the_problem_builds_once_at_64x64_without_labels(tmp_path):
  data_dir = str(tmp_path / "photo_edges64")
  problem = problems.get_problem("photo_edges64", data_dir=data_dir)
  assert (problem.image_shape, problem.paired, problem.n_classes) == ((64, 64, 3), True, 0)
  assert (problem.n_train, problem.n_test) == (2000, 200)
  files = listing(data_dir)
  assert files[0] == "meta.json" and all("-r06-" in f for f in files[1:]), files
  stamps = {f: os.stat(os.path.join(data_dir, f)).st_mtime_ns for f in files}
  assert problems.get_problem("photo_edges64", data_dir=data_dir) == problem
  assert {f: os.stat(os.path.join(data_dir, f)).st_mtime_ns for f in listing(data_dir)} == stamps


def test_what_the_problem_cannot_be():
  with pytest.raises(DataError, match="--image_size=32: photo_edges64 is 64x64"):
    embedded.photo_edges64_spec(image_size=32)
  with pytest.raises(DataError, match="--image_size=64: mnist is 32x32"):
    embedded.mnist_spec(image_size=64)
  with pytest.raises(DataError, match="--input=x: photo_edges64 is cut from scikit-image"):
    embedded.photo_edges64_spec(input="x")


def test_glow_data_and_the_registry_know_the_same_embedded_sets():
  assert generate.EMBEDDED == problems.EMBEDDED
  assert {name: embedded.size(name) for name in problems.EMBEDDED} == {
    "mnist": 32,
    "fashion_edges2shoes": 32,
    "fashion_mnist": 32,
    "mnist_digits": 32,
    "photo_edges64": 64,
  }
