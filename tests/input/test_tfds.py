"""`tfds:NAME` reads a data set that TFDS prepared locally (built here from real images)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.input.records import DataError
from tests.helpers import key
from tests.helpers import photo_patches


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("tfds"))
  images = {"train": photo_patches(24, 16, seed=50), "test": photo_patches(8, 16, seed=51)}
  splits = {
    split: tf.data.Dataset.from_tensor_slices({"image": x, "label": np.arange(len(x)) % 4})
    for split, x in images.items()
  }
  features = tfds.features.FeaturesDict(
    {
      "image": tfds.features.Image(shape=(16, 16, 3)),
      "label": tfds.features.ClassLabel(num_classes=4),
    }
  )
  tfds.dataset_builders.store_as_tfds_dataset(
    name="tiny_photos", version="1.0.0", features=features, split_datasets=splits, data_dir=root
  )
  return root, images


def test_tfds_problem_reads_the_prepared_set(tfds_dir):
  root, images = tfds_dir
  problem = problems.get_problem("tfds:tiny_photos", tfds_data_dir=root)
  assert (problem.image_shape, problem.paired, problem.n_classes) == ((16, 16, 3), False, 4)
  assert (problem.n_train, problem.n_test) == (24, 8)
  ds = input_pipeline.make_dataset(problem, "train", 5, repeat=False, shuffle=True, seed=1)
  got = [
    (key(img), int(label))
    for b in ds
    for img, label in zip(b["image_a"].numpy(), b["label"].numpy())
  ]
  assert sorted(got) == sorted((key(img), i % 4) for i, img in enumerate(images["train"]))
  batch = next(iter(input_pipeline.make_dataset(problem, "test", 4, dal=1)))
  assert batch["image_a"].dtype == tf.uint8 and batch["image_a"].shape == (4, 16, 16, 3)


def test_tfds_input_pipelines_split_the_examples(tfds_dir):
  root, _ = tfds_dir
  problem = problems.get_problem("tfds:tiny_photos", tfds_data_dir=root)
  seen = []
  for pipeline in range(2):
    ctx = tf.distribute.InputContext(2, pipeline, 2)
    ds = input_pipeline.make_dataset(
      problem, "test", 2, repeat=False, shuffle=False, input_context=ctx
    )
    seen.append({key(i) for b in ds for i in b["image_a"].numpy()})
  assert len(seen[0]) == len(seen[1]) == 4 and not seen[0] & seen[1]


def test_tfds_missing_data_set(tfds_dir):
  root, _ = tfds_dir
  with pytest.raises(DataError, match="not found"):
    problems.get_problem("tfds:no_such_set_xyz", tfds_data_dir=root)
  with pytest.raises(DataError, match="grey|channels"):
    problems.get_problem("tfds:tiny_photos", tfds_data_dir=root, channels=1)
