"""`--dal 2`: Glow's CIFAR-10 augmentation (Keras's ImageDataGenerator with shifts, rotations,
zoom, shear and flips), against scipy's affine_transform as Keras called it."""

import numpy as np
import pytest
from scipy import ndimage
import tensorflow as tf

from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from tests.helpers import photo_patches


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
  return problems.get_problem("mnist", data_dir=str(tmp_path_factory.mktemp("mnist")))


def keras_matrix(p, h, w):
  """Keras's apply_affine_transform, written out in numpy: rotation . shift . shear . zoom about
  the centre, on (row, col) coordinates."""
  c, s = np.cos(p["theta"]), np.sin(p["theta"])
  m = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
  m = m @ np.array([[1, 0, p["tx"] * h], [0, 1, p["ty"] * w], [0, 0, 1]])
  m = m @ np.array([[1, -np.sin(p["shear"]), 0], [0, np.cos(p["shear"]), 0], [0, 0, 1]])
  m = m @ np.array([[p["zx"], 0, 0], [0, p["zy"], 0], [0, 0, 1]])
  o_r, o_c = h / 2 - 0.5, w / 2 - 0.5
  return (
    np.array([[1, 0, o_r], [0, 1, o_c], [0, 0, 1]])
    @ m
    @ np.array([[1, 0, -o_r], [0, 1, -o_c], [0, 0, 1]])
  )


def keras_augment(image, p):
  """One uint8 [H, W, C] image as Glow's Keras pipeline made it: per-channel scipy warp
  (order 1, nearest fill), flip, floor."""
  h, w, _ = image.shape
  m = keras_matrix(p, h, w)
  out = np.stack(
    [
      ndimage.affine_transform(
        image[..., ch].astype(np.float64), m[:2, :2], m[:2, 2], order=1, mode="nearest"
      )
      for ch in range(image.shape[-1])
    ],
    axis=-1,
  )
  if p["flip"]:
    out = out[:, ::-1]
  return out


def _params(n, seed):
  params = input_pipeline.random_affine_params(tf.constant(n), tf.constant(seed, tf.int64))
  return [{k: float(v[i]) for k, v in params.items()} for i in range(n)]


def test_warp_matches_scipy_as_keras_used_it():
  images = photo_patches(6, 16, seed=3).astype(np.float32)
  n = len(images)
  params = input_pipeline.random_affine_params(tf.constant(n), tf.constant([4, 2], tf.int64))
  # Stronger maps than --dal 2 draws, so that every term (and the edge fill) is exercised.
  params = {k: v * 3 if k in ("theta", "shear", "tx", "ty") else v for k, v in params.items()}
  matrices = input_pipeline.affine_matrices(params, 16, 16)
  got = input_pipeline.warp_images(tf.constant(images), matrices).numpy()
  for i in range(n):
    p = {k: float(v[i]) for k, v in params.items()}
    np.testing.assert_allclose(matrices[i].numpy(), keras_matrix(p, 16, 16), atol=1e-5)
    expected = keras_augment(images[i].astype(np.uint8), dict(p, flip=0.0))
    np.testing.assert_allclose(got[i], expected, atol=2e-3, err_msg=f"image {i}")


def test_parameters_cover_kerass_ranges():
  ps = _params(4000, [1, 7])
  theta = np.degrees([p["theta"] for p in ps])
  assert 14.5 < theta.max() <= 15 and -15 <= theta.min() < -14.5
  for k, lo, hi in (("tx", -0.1, 0.1), ("ty", -0.1, 0.1), ("zx", 0.9, 1.1), ("zy", 0.9, 1.1)):
    v = np.array([p[k] for p in ps])
    assert lo <= v.min() < lo + 0.01 and hi - 0.01 < v.max() <= hi, k
  assert np.abs(np.degrees([p["shear"] for p in ps])).max() <= 0.02
  assert 0.45 < np.mean([p["flip"] for p in ps]) < 0.55
  # Independent streams: zx and zy are not the same draw.
  assert np.corrcoef([p["zx"] for p in ps], [p["zy"] for p in ps])[0, 1] < 0.1


def test_dal2_batches_are_kerass_transform_of_the_same_pairs(mnist):
  """Through make_dataset: batch k is the dal 0 batch k (same seed: same order) with the maps
  drawn from seed (seed * 1009, k); both sides of each pair get the same map."""
  seed = 5
  plain = list(input_pipeline.make_dataset(mnist, "train", 8, dal=0, seed=seed).take(3))
  augmented = list(input_pipeline.make_dataset(mnist, "train", 8, dal=2, seed=seed).take(3))
  n_changed = 0
  for k, (p_batch, a_batch) in enumerate(zip(plain, augmented)):
    np.testing.assert_array_equal(a_batch["label"], p_batch["label"])
    for i, p in enumerate(_params(8, [seed * 1009, k])):
      for side in ("image_a", "image_b"):
        expected = keras_augment(p_batch[side][i].numpy(), p)
        got = a_batch[side][i].numpy().astype(np.float64)
        # floor of the same value: equal, except where float rounding straddles an integer.
        diff = np.abs(got - np.floor(expected + 1e-6))
        assert diff.max() <= 1 and np.mean(diff) < 0.01, (k, i, side, diff.max())
      n_changed += not np.array_equal(a_batch["image_a"][i], p_batch["image_a"][i])
      # B = 255 - A before: after the same bilinear map, A + B = 255 (254 where not integral).
      total = a_batch["image_a"][i].numpy().astype(int) + a_batch["image_b"][i].numpy()
      assert set(np.unique(total)) <= {254, 255}
  assert n_changed == 24


def test_dal_above_two_is_refused(mnist):
  with pytest.raises(ValueError, match="dal .* must be 0, 1 or 2, got 3"):
    input_pipeline.make_dataset(mnist, "train", 8, dal=3)
