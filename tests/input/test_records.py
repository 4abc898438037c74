"""The TFRecord format: compatibility with the original generators' files, and its checks."""

import os

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.input import records
from tests.helpers import key
from tests.helpers import photo_patches


def _original_writer(root, split, images, labels, n_shards, attrs=None):
  """Writes shards exactly as the original Glow generators did (plain tf.train.Example code)."""
  res = int(np.log2(images.shape[1]))
  folder = os.path.join(root, split)
  os.makedirs(folder, exist_ok=True)
  writers = [
    tf.io.TFRecordWriter(
      os.path.join(folder, f"{split}-r{res:02d}-s-{s:04d}-of-{n_shards:04d}.tfrecords")
    )
    for s in range(n_shards)
  ]
  for i, (image, label) in enumerate(zip(images, labels)):
    feature = {
      "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(image.shape))),
      "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
      "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }
    if attrs is not None:
      feature["attr"] = tf.train.Feature(int64_list=tf.train.Int64List(value=list(attrs[i])))
    writers[i % n_shards].write(
      tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    )
  for w in writers:
    w.close()


def _all(problem, split, **kwargs):
  ds = input_pipeline.make_dataset(problem, split, 7, shuffle=False, repeat=False, **kwargs)
  batches = list(ds.as_numpy_iterator())
  return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_original_format_loads_unchanged(tmp_path):
  train, test = photo_patches(40, 32, seed=1), photo_patches(9, 32, seed=2)
  _original_writer(tmp_path, "train", train, np.arange(40) % 10, n_shards=3)
  _original_writer(tmp_path, "validation", test, np.arange(9) % 10, n_shards=1)
  problem = problems.get_problem(str(tmp_path))
  assert problem.image_shape == (32, 32, 3)
  assert (problem.n_train, problem.n_test, problem.paired, problem.has_attr) == (
    40,
    9,
    False,
    False,
  )
  assert len(problem.train_files) == 3
  got = _all(problem, "train")
  assert got["image_a"].dtype == np.uint8 and got["label"].dtype == np.int32
  assert "image_b" not in got
  expected = {key(img): label for img, label in zip(train, np.arange(40) % 10)}
  assert len(got["image_a"]) == 40
  assert {key(img): int(label) for img, label in zip(got["image_a"], got["label"])} == expected
  test_got = _all(problem, "test")
  np.testing.assert_array_equal(test_got["image_a"], test)  # one shard, no shuffle: file order


def test_attributes_load(tmp_path):
  images = photo_patches(12, 8, seed=3)
  attrs = np.random.default_rng(0).integers(0, 2, (12, 40))
  _original_writer(tmp_path / "celeba", "train", images, np.zeros(12), 1, attrs)
  _original_writer(tmp_path / "celeba", "validation", images[:4], np.zeros(4), 1, attrs[:4])
  problem = problems.get_problem("celeba", data_dir=str(tmp_path))
  assert problem.has_attr and problem.n_classes == 0 and problem.image_shape == (8, 8, 3)
  got = _all(problem, "train")
  np.testing.assert_array_equal(got["image_a"], images)
  np.testing.assert_array_equal(got["attr"], attrs)


def test_encode_decode_round_trip():
  a, b = photo_patches(2, 16, seed=4)
  pair = records.decode_example(records.encode_pair(a, b, 3))
  np.testing.assert_array_equal(pair["image_a"], a)
  np.testing.assert_array_equal(pair["image_b"], b)
  assert pair["label"] == 3 and pair["shape"] == (16, 16, 3)
  single = records.decode_example(records.encode_example(a[..., :1], 5, attr=[1] * 40))
  np.testing.assert_array_equal(single["image"], a[..., :1])
  assert single["label"] == 5 and list(single["attr"]) == [1] * 40
  with pytest.raises(ValueError, match="differ in shape"):
    records.encode_pair(a, b[:8])


def test_parse_batch_matches_numpy():
  a, b = photo_patches(2, 8, seed=5)
  serialized = tf.constant([records.encode_pair(a, b, 1), records.encode_pair(b, a, 2)])
  out = records.parse_batch(serialized, (8, 8, 3), paired=True)
  np.testing.assert_array_equal(out["image_a"].numpy(), np.stack([a, b]))
  np.testing.assert_array_equal(out["image_b"].numpy(), np.stack([b, a]))
  np.testing.assert_array_equal(out["label"].numpy(), [1, 2])
  with pytest.raises(tf.errors.InvalidArgumentError, match="shape differs"):
    records.parse_batch(serialized, (4, 16, 3), paired=True)


def test_shard_names():
  path = records.shard_path("/out", "train", 5, 3, 120)
  assert path == "/out/train/train-r05-s-0003-of-0120.tfrecords"
  assert records.resolution_log2(256) == 8
  with pytest.raises(ValueError, match="power of two"):
    records.resolution_log2(48)
