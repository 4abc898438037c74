"""Translation of a class-conditional pair: the labels reach both flows' priors."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
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
