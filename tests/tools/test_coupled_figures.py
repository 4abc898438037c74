"""tools/coupled_figures.py: the frontier's points, the rows of translations, the pair samples."""

import json

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2 import losses
from glow_tf2.config import GlowConfig
from glow_tf2.flows.coupled_prior import CoupledPrior
from glow_tf2.flows.glow import Glow
from glow_tf2_tools import coupled_figures
from tests import helpers

CELL = 8  # image side of the tiny models


def _pair(n_classes: int = 0):
  """Two tiny perturbed Glows (class-conditional with n_classes) and a coupled prior."""
  config = GlowConfig(
    image_shape=(CELL, CELL, 1), n_levels=2, depth=1, width=8, n_classes=n_classes
  )
  glow_a, glow_b = Glow(config, seed=1, name="a"), Glow(config, seed=2, name="b")
  labels = tf.range(16) % n_classes if n_classes else None
  for glow, seed in ((glow_a, 3), (glow_b, 4)):
    x = tf.random.stateless_uniform([16, CELL, CELL, 1], [seed, 0], -0.5, 0.5)
    glow.initialize(x, labels=labels)
    helpers.perturb(glow, seed=seed)
  prior = CoupledPrior(config, initial_rho=0.8)
  prior.r.assign(prior.r + tf.linspace(-0.5, 0.5, prior.r.shape[0]))
  return glow_a, glow_b, prior


def _cells(grid, n_rows, n_cols):
  """The [n_rows, n_cols, CELL, CELL, C] cells of a grid of the tiny models' images."""
  return helpers.grid_cells(grid, n_rows, n_cols, CELL)


def test_frontier_point_reads_bits_and_psnr_of_eval_json(tmp_path):
  report = {
    "metrics": {
      "bits_per_dim": {"a": {"noise": {"mean": 1.5}}, "b": {"noise": {"mean": 1.75}}},
      "translation": {
        "a2b": {"model": {"psnr": 20.0}, "nearest_neighbour": {"psnr": 16.5}},
        "b2a": {"model": {"psnr": 21.0}},
      },
    }
  }
  (tmp_path / "eval.json").write_text(json.dumps(report))
  point = coupled_figures.frontier_point(str(tmp_path))
  assert {k: v for k, v in point.items() if k != "nn_b2a"} == {
    "bits_a": 1.5,
    "bits_b": 1.75,
    "a2b": 20.0,
    "b2a": 21.0,
    "nn_a2b": 16.5,
  }
  assert np.isnan(point["nn_b2a"])
  path = tmp_path / "frontier.png"
  coupled_figures.plot_frontier([str(tmp_path)] * 2, ["x", "y"], str(path), "t")
  assert Image.open(path).size[0] > 100


def test_translation_rows_are_input_draws_and_partner():
  glow_a, glow_b, prior = _pair()
  images = helpers.real_images(3, (CELL, CELL, 1), seed=0)
  partners = 255 - images
  grid = coupled_figures.translation_rows(
    glow_tf2.ImagePair(glow_a, glow_b, prior), images, partners, 0.7, 4
  )
  cells = _cells(grid, 3, 6)
  np.testing.assert_array_equal(cells[:, 0], images)
  np.testing.assert_array_equal(cells[:, -1], partners)
  # Draw k of input i is decode_B(rho eps_A + 0.7 sqrt(1 - rho^2) n), n from the row seed
  # [3 k + i, SALT_A2B = 2]: pair.translate's draw of the seed 3 k.
  eps_a, _ = glow_a.encode(losses.preprocess(images, 8, noise=False))
  for k in range(4):
    noise = tf.stack(
      [tf.random.stateless_normal(eps_a.shape[1:], [3 * k + i, 2]) for i in range(3)]
    )
    eps_b = prior.rho() * eps_a + 0.7 * tf.exp(0.5 * prior.log_variance()) * noise
    expected = losses.postprocess(glow_b.decode(eps_b)[0], 8).numpy()
    np.testing.assert_array_equal(cells[:, 1 + k], expected)
  assert not np.array_equal(cells[:, 1], cells[:, 2])  # the draws differ


def test_pair_samples_alternate_a_and_b_from_the_joint():
  glow_a, glow_b, prior = _pair()
  grid = coupled_figures.pair_samples(glow_tf2.ImagePair(glow_a, glow_b, prior), 4, 0.0)
  cells = _cells(grid, 1, 8)[0]
  # At T = 0 every pair is the decoded zero code of each side.
  zero = tf.zeros([1, prior.data_dim])
  for k in range(4):
    np.testing.assert_array_equal(
      cells[2 * k], losses.postprocess(glow_a.decode(zero)[0], 8).numpy()[0]
    )
    np.testing.assert_array_equal(
      cells[2 * k + 1], losses.postprocess(glow_b.decode(zero)[0], 8).numpy()[0]
    )


def test_recorded_points_are_read_and_checked(tmp_path):
  path = tmp_path / "points.json"
  path.write_text(json.dumps([{"label": "p", "bits_a": 1, "bits_b": 2, "a2b": 3, "b2a": 4}]))
  points, labels = coupled_figures.read_points(str(path))
  assert labels == ["p"]
  assert {k: v for k, v in points[0].items() if not k.startswith("nn")} == {
    "bits_a": 1.0,
    "bits_b": 2.0,
    "a2b": 3.0,
    "b2a": 4.0,
  }
  path.write_text(json.dumps([{"label": "p", "bits_a": 1, "a2b": 3}]))
  with pytest.raises(ValueError, match=r"point 0 lacks bits_b, b2a"):
    coupled_figures.read_points(str(path))


def test_a_class_conditional_pair_translates_and_samples_given_the_classes():
  glow_a, glow_b, prior = _pair(n_classes=3)
  images = helpers.real_images(3, (CELL, CELL, 1), seed=0)
  labels = coupled_figures.class_labels(glow_a, [2, 0, 1])
  grid = coupled_figures.translation_rows(
    glow_tf2.ImagePair(glow_a, glow_b, prior), images, images, 0.0, 1, labels=labels
  )
  eps_a, _ = glow_a.encode(losses.preprocess(images, 8, noise=False), labels=labels)
  expected = losses.postprocess(glow_b.decode(prior.rho() * eps_a, labels=labels)[0], 8).numpy()
  np.testing.assert_array_equal(_cells(grid, 3, 3)[:, 1], expected)
  # Sampled pairs cycle through the classes: pair k is of class k mod 3.
  cells = _cells(
    coupled_figures.pair_samples(glow_tf2.ImagePair(glow_a, glow_b, prior), 4, 0.0), 1, 8
  )[0]
  zero = tf.zeros([4, prior.data_dim])
  classes = tf.constant([0, 1, 2, 0])
  a = losses.postprocess(glow_a.decode(zero, labels=classes)[0], 8).numpy()
  np.testing.assert_array_equal(cells[0::2], a)
  assert not np.array_equal(cells[0], cells[2])  # class 0 and class 1 at the same code
  assert coupled_figures.class_labels(_pair()[0], [1, 2]) is None
