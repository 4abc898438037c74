"""Shared fixtures: real images that install offline, and helpers that check bijector mathematics."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2_tools import sample_images


def real_images(n: int, shape, seed: int = 0) -> np.ndarray:
  """Real uint8 images [n, H, W, C] (H = W): photo patches (C = 3) or MNIST digits (C = 1)."""
  h, w, c = shape
  assert h == w, shape
  return sample_images.real_images(n, h, c, seed)


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
