"""Glow's remaining data sets: full-size ImageNet with labels (`--source=imagenet_full`,
`--problem=imagenet`), LSUN realnvp (`--source=lsun_realnvp`, `--problem=lsun_realnvp_<cat>`),
and pix2pix's facades by name (`--problem=facades`)."""

import os

import numpy as np
import pytest
import skimage.data
import skimage.transform
import tensorflow as tf

from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.input.records import DataError
from glow_tf2_data import generate
from tests.helpers import key
from tests.helpers import photo_patches
from tests.helpers import read_records
from tests.helpers import save
from tests.input.test_original_generators import train_a_few_steps


def _bytes(value):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def photo_crops(shapes, seed=0):
  """Real photo crops of the given (H, W), uint8 [H, W, 3] each."""
  photo = skimage.data.astronaut()
  rng = np.random.default_rng(seed)
  out = []
  for h, w in shapes:
    y, x = rng.integers(0, photo.shape[0] - h), rng.integers(0, photo.shape[1] - w)
    out.append(np.ascontiguousarray(photo[y : y + h, x : x + w]))
  return out


# --------------------------------------------------------------------------------------------
# ImageNet, full size.


def write_slim_imagenet(path, images, labels):
  """One file in the layout of TensorFlow's build_imagenet_data.py (JPEG + 1-based label)."""
  with tf.io.TFRecordWriter(str(path)) as writer:
    for image, label in zip(images, labels):
      feature = {
        "image/encoded": _bytes(tf.io.encode_jpeg(image, quality=95).numpy()),
        "image/class/label": _int64([label]),
        "image/height": _int64([image.shape[0]]),
        "image/width": _int64([image.shape[1]]),
        "image/format": _bytes(b"JPEG"),
        "image/class/synset": _bytes(b"n01440764"),
      }
      writer.write(
        tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
      )


def float_pyramid(x):
  """Glow's dump_imagenet levels: 2x2 means of the FLOAT image above, each floored."""
  out = []
  x = x.astype(np.float64)
  while True:
    out.append(np.floor(x).astype(np.uint8))
    if x.shape[0] == 4:
      return out
    x = x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2, 3).mean(axis=(1, 3))


def test_imagenet_full_with_labels(tmp_path):
  src = tmp_path / "slim"
  src.mkdir()
  shapes = [(16, 24), (24, 16), (16, 16), (20, 16), (16, 16), (16, 30)]
  train = photo_crops(shapes, seed=1)
  valid = photo_crops(shapes[:3], seed=2)
  train_labels, valid_labels = [1, 1000, 7, 500, 3, 42], [1000, 2, 9]
  write_slim_imagenet(src / "train-00000-of-00002", train[:3], train_labels[:3])
  write_slim_imagenet(src / "train-00001-of-00002", train[3:], train_labels[3:])
  write_slim_imagenet(src / "validation-00000-of-00001", valid, valid_labels)
  out = tmp_path / "out"
  assert generate.generate("imagenet_full", str(out), input=str(src), image_size=16, shards=2)

  def expected(images, labels, res_log2):
    rows = []
    for image, label in zip(images, labels):
      decoded = tf.io.decode_jpeg(tf.io.encode_jpeg(image, quality=95)).numpy()
      h, w = decoded.shape[:2]
      side = min(h, w)
      square = decoded[(h - side) // 2 :, (w - side) // 2 :][:side, :side]
      # 16 -> 16 without half-pixel centres is the identity: the levels are the float means.
      level = float_pyramid(square)[4 - res_log2]
      rows.append((key(level), label - 1))
    return sorted(rows)

  for split, images, labels in (
    ("train", train, train_labels),
    ("validation", valid, valid_labels),
  ):
    for res in (4, 3, 2):
      got = read_records(str(out), split, res)
      assert sorted((key(g["data"]), g["label"]) for g in got) == expected(images, labels, res)
  problem = problems.get_problem("imagenet", data_dir=str(out))
  assert (problem.n_classes, problem.image_shape, problem.n_train) == (1000, (16, 16, 3), 6)
  # TF1's bilinear resize (no half-pixel centres) from 16 to 8 samples the even pixels.
  assert generate.generate("imagenet_full", str(tmp_path / "o8"), input=str(src), image_size=8)
  got = read_records(str(tmp_path / "o8"), "validation", 3)
  squares = [tf.io.decode_jpeg(tf.io.encode_jpeg(x, quality=95)).numpy() for x in valid]
  want = [
    s[(s.shape[0] - 16) // 2 :, (s.shape[1] - 16) // 2 :][:16:2, :16:2].copy() for s in squares
  ]
  assert sorted(key(g["data"]) for g in got) == sorted(key(w) for w in want)


def test_imagenet_full_bad_label_names_the_file(tmp_path):
  src = tmp_path / "slim"
  src.mkdir()
  write_slim_imagenet(src / "train-00000-of-00001", photo_crops([(8, 8)]), [1001])
  write_slim_imagenet(src / "validation-00000-of-00001", photo_crops([(8, 8)]), [1])
  with pytest.raises(DataError, match=r"train-00000-of-00001: image/class/label 1001 outside"):
    generate.generate("imagenet_full", str(tmp_path / "out"), input=str(src), image_size=8)


# --------------------------------------------------------------------------------------------
# LSUN realnvp.


def write_realnvp_shards(folder, split, images, n_shards):
  """Glow's lsun.py --realnvp: (shape, data, label 0), each image at its own size, `-r06-`."""
  os.makedirs(folder / split, exist_ok=True)
  name = f"{split}-r06-s-%04d-of-{n_shards:04d}.tfrecords"
  writers = [tf.io.TFRecordWriter(str(folder / split / (name % s))) for s in range(n_shards)]
  for i, image in enumerate(images):
    feature = {
      "shape": _int64(image.shape),
      "data": _bytes(image.tobytes()),
      "label": _int64([0]),
    }
    writers[i % n_shards].write(
      tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    )
  for w in writers:
    w.close()


def find_window(crop, images):
  """(image index, row, col) where crop sits in one of images, or None."""
  h, w = crop.shape[:2]
  for n, image in enumerate(images):
    for r in range(image.shape[0] - h + 1):
      for c in range(image.shape[1] - w + 1):
        if np.array_equal(image[r : r + h, c : c + w], crop):
          return n, r, c
  return None


def test_lsun_realnvp_reads_random_crops_and_centre_crops(tmp_path):
  train_shapes = [(96, 128), (130, 96), (96, 96), (96, 112), (100, 96), (96, 140)]
  train = photo_crops(train_shapes, seed=3)
  valid = photo_crops([(96, 120), (110, 96)], seed=4)
  base = tmp_path / "lsun_realnvp"
  write_realnvp_shards(base / "tower", "train", train, 2)
  write_realnvp_shards(base / "tower", "validation", valid, 1)
  problem = problems.get_problem("lsun_realnvp_tower", data_dir=str(base))
  assert (problem.image_shape, problem.random_crop, problem.n_train) == ((64, 64, 3), True, 6)
  ds = input_pipeline.make_dataset(problem, "train", 3, seed=1)
  where = {}
  for batch in ds.take(8):  # 4 epochs
    assert batch["image_a"].shape == (3, 64, 64, 3)
    for crop in batch["image_a"].numpy():
      found = find_window(crop, train)
      assert found is not None
      where.setdefault(found[0], set()).add(found[1:])
  assert sorted(where) == list(range(6))
  assert sum(len(v) for v in where.values()) > 12  # the crops move between epochs
  test = input_pipeline.make_dataset(problem, "test", 2, shuffle=False, repeat=False)
  got = np.concatenate([b["image_a"] for b in test.as_numpy_iterator()])
  want = [x[(x.shape[0] - 64) // 2 :, (x.shape[1] - 64) // 2 :][:64, :64] for x in valid]
  np.testing.assert_array_equal(got, want)
  with pytest.raises(ValueError, match="crops at most 96x96"):
    problems.get_problem("lsun_realnvp_tower", data_dir=str(base), image_size=128)
  small = problems.get_problem("lsun_realnvp_tower", data_dir=str(base), image_size=16)
  train_a_few_steps(small)


def test_lsun_realnvp_generator_keeps_the_aspect_ratio(tmp_path):
  src = tmp_path / "src"
  train = photo_crops([(200, 300), (256, 192), (150, 150)], seed=5)
  valid = photo_crops([(192, 256)], seed=6)
  for split, images in (("tower_train", train), ("tower_val", valid)):
    for i, image in enumerate(images):
      save(str(src / split / f"{i}.png"), image)
  out = tmp_path / "out"
  assert generate.generate("lsun_realnvp", str(out), input=str(src), shards=2)
  got = read_records(str(out), "train", 6)

  def reference(image):
    scale = min(image.shape[:2]) / 96.0
    reduced = skimage.transform.pyramid_reduce(image, downscale=scale, channel_axis=-1)
    return (reduced * 255.0).astype(np.uint8)

  want = [reference(x) for x in train]
  assert sorted(g["data"].shape for g in got) == sorted(w.shape for w in want)
  assert sorted(w.shape for w in want) == [(96, 96, 3), (96, 144, 3), (128, 96, 3)]
  assert sorted(key(g["data"]) for g in got) == sorted(key(w) for w in want)
  problem = problems.get_problem("lsun_realnvp_tower", data_dir=str(out), image_size=32)
  batch = next(iter(input_pipeline.make_dataset(problem, "test", 1, repeat=False)))
  assert batch["image_a"].shape == (1, 32, 32, 3)


# --------------------------------------------------------------------------------------------
# facades.


def test_facades_by_name(tmp_path, monkeypatch):
  src = tmp_path / "datasets" / "facades"
  pairs = {"train": photo_patches(6, 16, seed=7), "val": photo_patches(2, 16, seed=8)}
  for split, images in pairs.items():
    for i, a in enumerate(images):
      save(str(src / split / f"{i + 1}.png"), np.concatenate([a, 255 - a], axis=1))
  with pytest.raises(DataError, match="pix2pix image pairs, not a TFRecord set; convert"):
    problems.get_problem("facades", data_dir=str(src))
  out = tmp_path / "sets"
  assert generate.generate("pix2pix", str(out / "facades"), input=str(src), shards=2)
  problem = problems.get_problem("facades", data_dir=str(out))  # finds out/facades
  assert problem.paired and (problem.n_train, problem.n_test) == (6, 2)
  for split, stored in (("train", "train"), ("test", "val")):
    ds = input_pipeline.make_dataset(problem, split, 2, shuffle=False, repeat=False)
    got = list(ds.as_numpy_iterator())
    a = np.concatenate([b["image_a"] for b in got])
    b = np.concatenate([b["image_b"] for b in got])
    np.testing.assert_array_equal(b, 255 - a)  # B is the right half of the same file
    assert sorted(key(x) for x in a) == sorted(key(x) for x in pairs[stored])
  train_a_few_steps(problem)
