"""Translation of a class-conditional pair: the labels reach both flows' priors (plain and coupled)."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.flows import coupled_prior as cp
from tests import helpers

CONFIG = glow_tf2.GlowConfig(
  image_shape=(8, 8, 3), n_levels=2, depth=2, width=8, permutation="lu", n_classes=3
)


def _pair():
  images = helpers.real_images(6, CONFIG.image_shape, seed=0)
  x = glow_tf2.preprocess(images, 8, noise=False)
  labels = tf.constant([0, 1, 2, 0, 1, 2])
  glows = []
  for seed in (1, 2):
    glow = glow_tf2.Glow(CONFIG, seed=seed, name=f"glow_{seed}")
    glow.initialize(x, labels=labels)
    helpers.perturb(glow, scale=0.02, seed=seed)  # the class embeddings too: labels matter
    glows.append(glow)
  return glows, x, labels


def test_conditional_translation_equals_decode_b_of_encode_a_given_the_labels():
  (glow_a, glow_b), x_a, labels = _pair()
  a2b = glow_tf2.translation(glow_a, glow_b, labels=labels)
  x_b = a2b.forward(tf.identity(x_a))
  eps, ildj_a = glow_a.encode(x_a, labels=labels)
  by_hand, fldj_b = glow_b.decode(eps, labels=labels)
  np.testing.assert_allclose(x_b.numpy(), by_hand.numpy(), atol=1e-5)
  np.testing.assert_allclose(
    a2b.forward_log_det_jacobian(tf.identity(x_a), event_ndims=3).numpy(),
    (ildj_a + fldj_b).numpy(),
    rtol=1e-4,
    atol=1e-3,
  )
  np.testing.assert_allclose(a2b.inverse(tf.identity(x_b)).numpy(), x_a.numpy(), atol=1e-4)
  # Other labels give another translation: the labels are used, not dropped.
  other = glow_tf2.translation(glow_a, glow_b, labels=(labels + 1) % 3).forward(tf.identity(x_a))
  assert np.abs(other.numpy() - x_b.numpy()).max() > 1e-3


def test_labels_must_match_the_pair():
  (glow_a, glow_b), _, labels = _pair()
  with pytest.raises(ValueError, match="needs the images' labels"):
    glow_tf2.translation(glow_a, glow_b)
  plain = glow_tf2.GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=1, width=8)
  with pytest.raises(ValueError, match="not class-conditional"):
    glow_tf2.translation(glow_tf2.Glow(plain), glow_tf2.Glow(plain, name="b"), labels=labels)


def test_coupled_translation_of_a_conditional_pair_is_the_t0_translate_given_the_labels():
  (glow_a, glow_b), x_a, labels = _pair()
  prior = cp.CoupledPrior(CONFIG, initial_rho=0.9)
  helpers.perturb(prior, scale=0.1, seed=3)  # rho differs per channel, so the Scale matters
  a2b = cp.coupled_translation(glow_a, glow_b, prior, labels=labels)
  x_b = a2b.forward(tf.identity(x_a))
  by_hand = cp.translate(glow_a, glow_b, prior, x_a, temperature=0.0, labels=labels)
  np.testing.assert_allclose(x_b.numpy(), by_hand.numpy(), atol=1e-5)
  eps_a, ildj_a = glow_a.encode(x_a, labels=labels)
  _, fldj_b = glow_b.decode(prior.rho() * eps_a, labels=labels)
  log_rho = tf.reduce_sum(tf.math.log(tf.abs(prior.rho())))
  np.testing.assert_allclose(
    a2b.forward_log_det_jacobian(tf.identity(x_a), event_ndims=3).numpy(),
    (ildj_a + log_rho + fldj_b).numpy(),
    rtol=1e-4,
    atol=1e-3,
  )
  np.testing.assert_allclose(a2b.inverse(tf.identity(x_b)).numpy(), x_a.numpy(), atol=1e-4)
  other = cp.coupled_translation(glow_a, glow_b, prior, labels=(labels + 1) % 3)
  assert np.abs(other.forward(tf.identity(x_a)).numpy() - x_b.numpy()).max() > 1e-3
  with pytest.raises(ValueError, match="coupled_translation: a class-conditional pair needs"):
    cp.coupled_translation(glow_a, glow_b, prior)
  plain = glow_tf2.GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=1, width=8)
  with pytest.raises(ValueError, match="coupled_translation: labels given, but the pair is not"):
    cp.coupled_translation(
      glow_tf2.Glow(plain), glow_tf2.Glow(plain, name="b"), cp.CoupledPrior(plain), labels=labels
    )
