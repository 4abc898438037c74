"""Sets written field by field as each original generator wrote them: read, then trained on.

- Glow's data_loaders/generate_tfr/generate.py (TFRecordExporter): ImageNet (`label` 0..999,
  `attr` an EMPTY int64 list) and CelebA-HQ (`label` 0, `attr` 40 values), every resolution from
  the top down to 4x4, records spread over `<split>-rNN-s-SSSS-of-NNNN.tfrecords` shards by a
  random permutation.
- Glow's data_loaders/generate_tfr/lsun.py: `shape`, `data`, `label` 0 only, one resolution.
- pix2pix-flow: `edges2shoes_32/{train,val}/{A,B}.npy` (uint8 [N, 32, 32, 3]).
"""

import os

import numpy as np
import tensorflow as tf

import glow_tf2
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import optim
from tests.helpers import box2
from tests.helpers import key
from tests.helpers import photo_patches


def _int64(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _example(feature: dict) -> bytes:
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_exporter_set(root, split, top_log2, n_shards, examples, seed=0):
  """Glow's TFRecordExporter: for each lod a random permutation of the images split into shards;
  every image written at every resolution 2^top_log2 .. 4 as (shape, data, label, attr).

  examples: [(label, [uint8 image per lod, largest first], attr list)].
  """
  folder = os.path.join(root, split)
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  n = len(examples)
  for lod in range(top_log2 - 1):
    to_shard = np.zeros(n, np.int64)
    for shard, part in enumerate(np.array_split(rng.permutation(n), n_shards)):
      to_shard[part] = shard
    name = f"{split}-r{top_log2 - lod:02d}-s-%04d-of-{n_shards:04d}.tfrecords"
    writers = [tf.io.TFRecordWriter(os.path.join(folder, name % s)) for s in range(n_shards)]
    for i, (label, imgs, attr) in enumerate(examples):
      quant = imgs[lod]
      feature = {
        "shape": _int64(quant.shape),
        "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[quant.tobytes()])),
        "label": _int64([label]),
        "attr": _int64(attr),
      }
      writers[to_shard[i]].write(_example(feature))
    for w in writers:
      w.close()


def write_lsun_set(root, split, n_shards, images, seed=0):
  """Glow's lsun.py: (shape, data, label=0) at one resolution, random shard assignment."""
  folder = os.path.join(root, split)
  os.makedirs(folder, exist_ok=True)
  res = int(np.log2(images.shape[1]))
  to_shard = np.zeros(len(images), np.int64)
  order = np.random.default_rng(seed).permutation(len(images))
  for shard, part in enumerate(np.array_split(order, n_shards)):
    to_shard[part] = shard
  name = f"{split}-r{res:02d}-s-%04d-of-{n_shards:04d}.tfrecords"
  writers = [tf.io.TFRecordWriter(os.path.join(folder, name % s)) for s in range(n_shards)]
  for i, img in enumerate(images):
    feature = {
      "shape": _int64(img.shape),
      "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[img.tobytes()])),
      "label": _int64([0]),
    }
    writers[to_shard[i]].write(_example(feature))
  for w in writers:
    w.close()


def levels(image):
  """The image and its 2x2 box downsamplings down to 4x4."""
  out = [image]
  while out[-1].shape[0] > 4:
    out.append(box2(out[-1]))
  return out


def read_all(problem, split):
  ds = input_pipeline.make_dataset(problem, split, 5, shuffle=False, repeat=False)
  batches = list(ds.as_numpy_iterator())
  return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def train_a_few_steps(problem, n_steps=3):
  """A tiny Glow per side, data-initialised on one batch, then Adamax steps on bits/dim.

  Returns the losses (mean bits/dim over the sides) before each step.
  """
  config = glow_tf2.GlowConfig(
    image_shape=problem.image_shape, n_levels=2, depth=1, width=8, coupling="affine"
  )
  batch = next(iter(input_pipeline.make_dataset(problem, "train", 4, seed=1, dal=1)))
  sides = ["image_a", "image_b"] if problem.paired else ["image_a"]
  glows = [glow_tf2.Glow(config, seed=i, name=f"g{i}") for i in range(len(sides))]
  for glow, side in zip(glows, sides):
    glow.initialize(glow_tf2.preprocess(batch[side], noise=False))
  variables = [v for g in glows for v in g.trainable_variables]
  opt = optim.make_optimizer("adamax", 1e-2, 0.9, 0.99)
  losses = []
  for step in range(n_steps):
    with tf.GradientTape() as tape:
      loss = tf.add_n(
        [
          tf.reduce_mean(glow_tf2.bits_per_dim(g, batch[s], seed=tf.constant([step, 0])))
          for g, s in zip(glows, sides)
        ]
      ) / len(sides)
    opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
    losses.append(float(loss))
  assert np.all(np.isfinite(losses)), losses
  assert losses[-1] < losses[0], losses
  return losses


def test_glow_imagenet_generator_records(tmp_path):
  """The ImageNet set of Glow's generate.py: `attr` is an empty list, labels are 0..999."""
  rng = np.random.default_rng(0)
  train, valid = photo_patches(14, 16, seed=1), photo_patches(6, 16, seed=2)
  train_labels, valid_labels = rng.integers(0, 1000, 14), rng.integers(0, 1000, 6)
  write_exporter_set(
    tmp_path, "train", 4, 3, [(l, levels(x), []) for x, l in zip(train, train_labels)]
  )
  write_exporter_set(
    tmp_path, "validation", 4, 2, [(l, levels(x), []) for x, l in zip(valid, valid_labels)], seed=1
  )
  problem = problems.get_problem(str(tmp_path))
  assert (problem.image_shape, problem.has_attr, problem.paired) == ((16, 16, 3), False, False)
  assert (problem.n_train, problem.n_test, len(problem.train_files)) == (14, 6, 3)
  got = read_all(problem, "train")
  assert "attr" not in got
  expected = {key(x): int(l) for x, l in zip(train, train_labels)}
  assert {key(x): int(l) for x, l in zip(got["image_a"], got["label"])} == expected
  # A lower resolution of the same files: the 8x8 box downsamplings.
  small = problems.get_problem(str(tmp_path), image_size=8)
  got8 = read_all(small, "test")
  expected8 = {key(box2(x)): int(l) for x, l in zip(valid, valid_labels)}
  assert {key(x): int(l) for x, l in zip(got8["image_a"], got8["label"])} == expected8
  train_a_few_steps(problem)


def test_glow_celeba_generator_records(tmp_path):
  rng = np.random.default_rng(1)
  train, valid = photo_patches(12, 16, seed=3), photo_patches(4, 16, seed=4)
  attrs = rng.integers(0, 2, (16, 40))
  write_exporter_set(tmp_path, "train", 4, 3, [(0, levels(x), a) for x, a in zip(train, attrs)])
  write_exporter_set(
    tmp_path, "validation", 4, 1, [(0, levels(x), a) for x, a in zip(valid, attrs[12:])]
  )
  problem = problems.get_problem("celeba", data_dir=str(tmp_path), image_size=16)
  assert problem.has_attr and problem.n_classes == 0 and problem.n_train == 12
  got = read_all(problem, "train")
  expected = {key(x): tuple(a) for x, a in zip(train, attrs)}
  assert {key(x): tuple(a) for x, a in zip(got["image_a"], got["attr"])} == expected
  assert set(got["label"].tolist()) == {0}
  test = read_all(problems.get_problem("celeba", data_dir=str(tmp_path), image_size=4), "test")
  np.testing.assert_array_equal(test["image_a"], [box2(box2(x)) for x in valid])  # 1 shard
  np.testing.assert_array_equal(test["attr"], attrs[12:])
  train_a_few_steps(problem)


def test_glow_lsun_generator_records(tmp_path):
  root = tmp_path / "tower"  # the original wrote <tfrecord_dir>/<category>/{train,validation}
  train, valid = photo_patches(15, 16, seed=5), photo_patches(3, 16, seed=6)
  write_lsun_set(root, "train", 4, train)
  write_lsun_set(root, "validation", 1, valid)
  problem = problems.get_problem("lsun_tower", data_dir=str(tmp_path))
  assert (problem.image_shape, problem.n_train, problem.n_test) == ((16, 16, 3), 15, 3)
  got = read_all(problem, "train")
  assert sorted(key(x) for x in got["image_a"]) == sorted(key(x) for x in train)
  np.testing.assert_array_equal(read_all(problem, "test")["image_a"], valid)
  train_a_few_steps(problem)


def test_pix2pix_flow_npy_layout(tmp_path, monkeypatch):
  """pix2pix-flow's edges2shoes_32/{train,val}/{A,B}.npy, read by name and trained on."""
  root = tmp_path / "edges2shoes_32"
  a_train, a_val = photo_patches(10, 32, seed=7), photo_patches(4, 32, seed=8)
  for split, a in (("train", a_train), ("val", a_val)):
    os.makedirs(root / split)
    np.save(root / split / "A.npy", a)
    np.save(root / split / "B.npy", 255 - a)
  monkeypatch.setenv("GLOW_TF2_CACHE", str(tmp_path / "cache"))
  problem = problems.get_problem("edges2shoes", data_dir=str(root))
  assert problem.paired and (problem.n_train, problem.n_test) == (10, 4)
  got = read_all(problem, "train")
  np.testing.assert_array_equal(got["image_b"], 255 - got["image_a"])
  assert sorted(key(x) for x in got["image_a"]) == sorted(key(x) for x in a_train)
  train_a_few_steps(problem)
