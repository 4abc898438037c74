"""Property: the two sides of a pair stay paired whatever the pipeline does to them.

Sets of pairs with B = 255 - A and label = the pair's index; hypothesis draws the augmentation
level, seed, batch size, shuffling, a centre crop, or random crops (realnvp-style sets of
varying image sizes). Every example must still be a pair (A + B = 255; under --dal 1 and 2 the bilinear
maps are floored to uint8 side by side, so a sum can lose 1 where a pixel is non-integral, or 2
where float32 rounding leaves both sides just below an integer) and, without augmentation, the
pair its label names.
"""

import os

from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import skimage.data

from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.input import records
from glow_tf2.input import writer
from tests.helpers import photo_patches

N_PAIRS = 12
# Fixed draws, as in tests/flows/test_properties.py: CI sees the same examples every run;
# HYPOTHESIS_RANDOM=1 explores new ones (docs/testing.md).
_RANDOM = os.environ.get("HYPOTHESIS_RANDOM") == "1"


def _write_pairs(root, images, res_log2, n_shards):
  spec = writer.DatasetSpec(
    splits={
      split: writer.SplitData(
        len(images),
        (records.encode_pair(a, 255 - a, i) for i, a in enumerate(images)),
        n_shards,
      )
      for split in ("train", "validation")
    },
    res_log2s=(res_log2,),
    meta={"paired": True, "n_classes": len(images)},
  )
  writer.write_set(str(root), spec)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
  root = tmp_path_factory.mktemp("pairs")
  fixed = photo_patches(N_PAIRS, 16, seed=21)
  _write_pairs(root / "fixed", fixed, 4, 3)
  photo = skimage.data.astronaut()
  rng = np.random.default_rng(5)
  varying = []
  for i in range(N_PAIRS):
    h, w = 96 + int(rng.integers(0, 12)), 96 + int(rng.integers(0, 20))
    y, x = rng.integers(0, 512 - h), rng.integers(0, 512 - w)
    varying.append(np.ascontiguousarray(photo[y : y + h, x : x + w]))
  os.makedirs(root / "lsun_realnvp" / "pairs")
  _write_pairs(root / "lsun_realnvp" / "pairs", varying, 6, 2)
  return {"fixed": (str(root / "fixed"), fixed), "varying": (str(root / "lsun_realnvp"), varying)}


def _is_window(crop, image):
  h, w = crop.shape[:2]
  rows, cols = image.shape[0] - h + 1, image.shape[1] - w + 1
  return any(
    np.array_equal(image[r : r + h, c : c + w], crop) for r in range(rows) for c in range(cols)
  )


@settings(max_examples=25, deadline=None, derandomize=not _RANDOM, database=None)
# The random draw that found the floor-rounding sum of 253 below.
@example(layout="fixed", dal=2, seed=5647, batch_size=2, shuffle=False, split="test", crop=8)
@given(
  layout=st.sampled_from(["fixed", "centre_crop", "random_crop"]),
  dal=st.integers(0, 2),
  seed=st.integers(0, 2**20),
  batch_size=st.integers(1, 7),
  shuffle=st.booleans(),
  split=st.sampled_from(["train", "test"]),
  crop=st.sampled_from([8, 12, 16]),
)
def test_pairs_stay_paired(sets, layout, dal, seed, batch_size, shuffle, split, crop):
  if layout == "random_crop":
    root, originals = sets["varying"]
    problem = problems.get_problem("lsun_realnvp_pairs", data_dir=root, image_size=crop)
  else:
    root, originals = sets["fixed"]
    problem = problems.get_problem(root, crop_size=crop if layout == "centre_crop" else None)
  ds = input_pipeline.make_dataset(
    problem, split, batch_size, shuffle=shuffle, dal=dal, seed=seed, repeat=True
  )
  seen = 0
  for batch in ds.take(3).as_numpy_iterator():
    a, b = batch["image_a"].astype(np.int32), batch["image_b"].astype(np.int32)
    assert a.shape == b.shape == (batch_size, *problem.image_shape)
    total = a + b
    if dal:
      # Both levels resample bilinearly and floor (dal 1: continuous shifts, dal 2: Keras's maps).
      # floor(x) + floor(y) > x + y - 2, and x + y = 255 * (sum of the bilinear weights), which
      # float32 leaves a hair off 1: 253 is reachable (seed 5647 of the fixed layout hits it),
      # a mis-paired pair (two different maps) is off by far more.
      assert total.min() >= 253 and total.max() == 255
    else:
      assert (total == 255).all()
    for image, label in zip(batch["image_a"], batch["label"]):
      original = originals[label]
      if dal:  # augmented: the sums above are the check
        continue
      if layout == "random_crop" and split == "train":
        assert _is_window(image, original)
      else:  # the centre (the whole image for the fixed layout)
        h, w = image.shape[:2]
        top, left = (original.shape[0] - h) // 2, (original.shape[1] - w) // 2
        np.testing.assert_array_equal(image, original[top : top + h, left : left + w])
      seen += 1
  assert dal or seen == 3 * batch_size
