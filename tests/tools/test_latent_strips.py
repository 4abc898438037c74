"""tools/latent_strips.py: interpolation and manipulation strips, against the codes computed here."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2 import losses
from glow_tf2_tools import latent_strips
from tests import helpers
from tests.tools.test_coupled_figures import CELL
from tests.tools.test_coupled_figures import _cells
from tests.tools.test_coupled_figures import _pair


def _codes(glow, images):
  return glow.encode(losses.preprocess(images, 8, noise=False))[0]


def _decoded(glow, codes):
  return losses.postprocess(glow.decode(tf.constant(codes, tf.float32))[0], 8).numpy()


def test_interpolation_ends_are_the_inputs_and_the_middle_is_the_mean_code():
  glow_a, glow_b, prior = _pair()
  starts = helpers.real_images(2, (CELL, CELL, 1), seed=0)
  ends = helpers.real_images(2, (CELL, CELL, 1), seed=1)
  grid = latent_strips.interpolation_rows(
    glow_tf2.ImagePair(glow_a, glow_b, prior), starts, ends, n_frames=3
  )
  cells = _cells(grid, 4, 3)  # rows: pair 0 A, pair 0 B, pair 1 A, pair 1 B
  # The flow is exact: the end frames are the inputs themselves.
  np.testing.assert_array_equal(cells[0::2, 0], starts)
  np.testing.assert_array_equal(cells[0::2, -1], ends)
  z_start, z_end = _codes(glow_a, starts).numpy(), _codes(glow_a, ends).numpy()
  middle = 0.5 * (z_start + z_end)
  np.testing.assert_array_equal(cells[0::2, 1], _decoded(glow_a, middle))
  # B rows: decode_B(rho z), the T = 0 translation of each frame.
  rho = prior.rho().numpy()
  for column, codes in enumerate((z_start, middle, z_end)):
    np.testing.assert_array_equal(cells[1::2, column], _decoded(glow_b, rho * codes))
  assert not np.array_equal(cells[0, 0], cells[0, 2])  # the line goes somewhere


def test_label_directions_are_mean_of_label_minus_mean_of_rest():
  glow_a, glow_b, prior = _pair()
  images = helpers.real_images(12, (CELL, CELL, 1), seed=2)
  labels = np.array([0, 1, 2] * 4)
  batches = [
    {"image_a": images[:5], "label": labels[:5]},
    {"image_a": images[5:], "label": labels[5:]},
  ]
  directions = latent_strips.label_directions(glow_tf2.ImagePair(glow_a, glow_b, prior), batches)
  codes = _codes(glow_a, images).numpy().astype(np.float64)
  assert sorted(directions) == [0, 1, 2]
  for label in range(3):
    expected = codes[labels == label].mean(0) - codes[labels != label].mean(0)
    np.testing.assert_allclose(directions[label], expected, rtol=1e-5, atol=1e-6)


def test_manipulation_moves_the_code_along_the_direction():
  glow_a, glow_b, prior = _pair()
  images = helpers.real_images(2, (CELL, CELL, 1), seed=3)
  direction = np.random.default_rng(0).normal(size=[prior.data_dim]).astype(np.float32)
  strengths = (0.0, 1.0, 2.5)
  grid = latent_strips.manipulation_rows(
    glow_tf2.ImagePair(glow_a, glow_b, prior), images, direction, strengths
  )
  cells = _cells(grid, 4, 3)
  np.testing.assert_array_equal(cells[0::2, 0], images)  # strength 0: the input
  codes = _codes(glow_a, images).numpy()
  rho = prior.rho().numpy()
  for column, s in enumerate(strengths):
    moved = codes + s * direction
    np.testing.assert_array_equal(cells[0::2, column], _decoded(glow_a, moved))
    np.testing.assert_array_equal(cells[1::2, column], _decoded(glow_b, rho * moved))
  assert not np.array_equal(cells[0, 0], cells[0, 2])


def test_bad_arguments_are_named():
  glow_a, glow_b, prior = _pair()
  images = helpers.real_images(2, (CELL, CELL, 1), seed=0)
  with pytest.raises(ValueError, match="n_frames must be at least 2"):
    latent_strips.interpolation_rows(
      glow_tf2.ImagePair(glow_a, glow_b, prior), images, images, n_frames=1
    )
  with pytest.raises(ValueError, match="2 start images but 1 ends"):
    latent_strips.interpolation_rows(glow_tf2.ImagePair(glow_a, glow_b, prior), images, images[:1])


def test_a_class_conditional_pair_decodes_every_frame_with_its_line_class():
  glow_a, glow_b, prior = _pair(n_classes=3)
  labels = np.array([0, 2])
  starts = helpers.real_images(2, (CELL, CELL, 1), seed=4)
  ends = helpers.real_images(2, (CELL, CELL, 1), seed=5)
  cells = _cells(
    latent_strips.interpolation_rows(
      glow_tf2.ImagePair(glow_a, glow_b, prior), starts, ends, 3, labels
    ),
    4,
    3,
  )

  def codes(glow, images, y):
    x = losses.preprocess(images, 8, noise=False)
    return glow.encode(x, labels=tf.constant(y, tf.int32))[0].numpy()

  def decoded(glow, z, y):
    x = glow.decode(tf.constant(z, tf.float32), labels=tf.constant(y, tf.int32))[0]
    return losses.postprocess(x, 8).numpy()

  middle = 0.5 * (codes(glow_a, starts, labels) + codes(glow_a, ends, labels))
  np.testing.assert_array_equal(cells[0::2, 0], starts)
  np.testing.assert_array_equal(cells[0::2, 1], decoded(glow_a, middle, labels))
  rho = prior.rho().numpy()
  np.testing.assert_array_equal(cells[1::2, 1], decoded(glow_b, rho * middle, labels))
  # The class matters: the same code under another class decodes to another image.
  assert not np.array_equal(cells[0::2, 1], decoded(glow_a, middle, labels[::-1]))
