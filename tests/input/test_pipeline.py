"""The tf.data pipeline: batches, pairing under shuffle and --dal, seeds, input sharding."""

import numpy as np
import pytest
from scipy import ndimage
import tensorflow as tf

from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.input import records
from glow_tf2.input import writer
from tests.helpers import key
from tests.helpers import photo_patches
from tests.helpers import read_records


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
  return problems.get_problem("mnist", data_dir=str(tmp_path_factory.mktemp("mnist")))


def _pairs_set(root, images, n_shards):
  """A paired set with B = 255 - A, written through the library writer."""
  spec = writer.DatasetSpec(
    splits={
      split: writer.SplitData(
        len(images), (records.encode_pair(a, 255 - a, i) for i, a in enumerate(images)), n_shards
      )
      for split in ("train", "validation")
    },
    res_log2s=(records.resolution_log2(images.shape[1]),),
    meta={"paired": True, "n_classes": len(images)},
  )
  writer.write_set(str(root), spec)
  return problems.get_problem(str(root))


def test_batches_of_a_paired_problem(mnist):
  ds = input_pipeline.make_dataset(mnist, "train", 16, seed=1)
  spec = ds.element_spec
  assert spec["image_a"].shape.as_list() == [16, 32, 32, 3] and spec["image_a"].dtype == tf.uint8
  assert spec["image_b"].shape.as_list() == [16, 32, 32, 3]
  assert spec["label"].shape.as_list() == [16] and spec["label"].dtype == tf.int32
  # Values: every row is a stored pair with its label, read here with plain tf.train.Example.
  stored = {key(r["data_a"], r["data_b"]): r["label"] for r in read_records(mnist.root, "train")}
  assert len(stored) == mnist.n_train
  for batch in ds.take(3):
    a, b, labels = (batch[k].numpy() for k in ("image_a", "image_b", "label"))
    assert [stored[key(x, y)] for x, y in zip(a, b)] == labels.tolist()
    assert len({key(x) for x in a}) == 16  # 16 different pairs, not one repeated


@pytest.mark.parametrize("dal", [0, 1])
def test_pairs_stay_aligned_through_shuffle_and_augmentation(mnist, dal):
  ds = input_pipeline.make_dataset(mnist, "train", 64, dal=dal, seed=5)
  for batch in ds.take(20):
    total = batch["image_a"].numpy().astype(np.int32) + batch["image_b"].numpy()
    if dal:
      # Bilinear then floored: floor(x) + floor(y) > x + y - 2 with x + y = 255 up to float32
      # rounding; a pair warped by two different shifts is off by far more.
      assert total.min() >= 253 and total.max() == 255
    else:
      assert (total == 255).all()


def test_one_epoch_holds_every_example_once(mnist):
  ds = input_pipeline.make_dataset(mnist, "test", 64, repeat=False, seed=2)
  labels = np.concatenate([b["label"].numpy() for b in ds])
  images = np.concatenate(
    [
      b["image_a"].numpy()
      for b in input_pipeline.make_dataset(mnist, "test", 64, repeat=False, seed=2)
    ]
  )
  assert len(labels) == 500 and len({key(i) for i in images}) == 500


def test_deterministic_under_a_seed(mnist):
  def first(seed, dal):
    ds = input_pipeline.make_dataset(mnist, "train", 32, dal=dal, seed=seed)
    return [b["image_a"].numpy() for b in ds.take(3)]

  np.testing.assert_array_equal(first(7, 1), first(7, 1))
  assert not np.array_equal(first(7, 1), first(8, 1))
  assert not np.array_equal(first(7, 1), first(7, 0))


def test_dal1_shifts_continuously_by_at_most_ten_percent_and_pairs_alike(tmp_path):
  """`--dal 1` is Keras's width/height_shift_range=0.1 as the original used it: each image of
  batch k is scipy's bilinear shift of its source (edges repeated) by the drawn (tx, ty) of
  that batch's seed, floored, and A and B of a pair move together."""
  originals = photo_patches(8, 32, seed=31)
  problem = _pairs_set(tmp_path, originals, n_shards=2)
  seed = 3
  ds = input_pipeline.make_dataset(problem, "train", 8, dal=1, seed=seed)
  fractional = 0
  for step, batch in enumerate(ds.take(4)):
    params = input_pipeline.random_shift_params(8, tf.constant([seed * 1009, step], tf.int64))
    tx, ty = params["tx"].numpy() * 32, params["ty"].numpy() * 32
    assert np.abs(tx).max() <= 3.2 and np.abs(ty).max() <= 3.2
    fractional += np.sum(np.abs(tx - np.round(tx)) > 0.05)
    for i, (a, b, label) in enumerate(
      zip(batch["image_a"].numpy(), batch["image_b"].numpy(), batch["label"].numpy())
    ):
      source = originals[label].astype(np.float64)
      expected = np.floor(
        ndimage.shift(source, (-tx[i], -ty[i], 0), order=1, mode="nearest") + 1e-4
      )
      # Exact up to float32 against float64 at the floor's edges.
      assert np.abs(a - expected).max() <= 1 and np.mean(a == expected) > 0.97
      total = a.astype(np.int32) + b
      assert total.min() >= 253 and total.max() == 255
  assert fractional > 16  # shifts between whole pixels, not only whole ones


@pytest.mark.parametrize("n_shards", [4, 1])
def test_input_pipelines_split_the_data(tmp_path, n_shards):
  problem = _pairs_set(tmp_path, photo_patches(12, 8, seed=32), n_shards=n_shards)
  seen = []
  for pipeline in range(2):
    context = tf.distribute.InputContext(
      num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2
    )
    ds = input_pipeline.make_dataset(
      problem, "train", 2, repeat=False, seed=4, input_context=context
    )
    seen.append(sorted(int(l) for b in ds for l in b["label"].numpy()))
  assert seen[0] and seen[1]
  assert not set(seen[0]) & set(seen[1])
  assert sorted(seen[0] + seen[1]) == list(range(12))


def test_plugs_into_distribute_datasets_from_function(mnist):
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  dist = strategy.distribute_datasets_from_function(
    lambda ctx: input_pipeline.make_dataset(
      mnist, "train", ctx.get_per_replica_batch_size(8), input_context=ctx
    )
  )
  batch = next(iter(dist))
  assert batch["image_a"].shape == (8, 32, 32, 3)
