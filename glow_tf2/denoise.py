"""One score-based denoising step through the flow itself (Tweedie's formula).

A flow trained on noised data y = x + sigma n, n ~ N(0, I) (`GlowConfig.noise_sigma`; TarFlow,
Zhai et al. 2024, and STARFlow, Gu et al. 2025, train this way) models the density p_sigma of y,
and its samples are draws of y: images with noise of std sigma on them. Tweedie's formula gives
the posterior mean of the clean image (Efron, 2011):

    E[x | y] = y + sigma^2 grad_y log p_sigma(y),

where log p_sigma(y) = log N(eps; 0, I) + log |det d eps / d y| with eps = encode(y) is the
flow's exact log-density, so the score is one backward pass through the encoder. A model
trained without noise (sigma = 0) is left as it is.
"""

import tensorflow as tf

from glow_tf2 import losses


def score(glow, x, labels=None) -> tf.Tensor:
  """grad_x log p(x) `[N, H, W, C]` of a Glow's density, by automatic differentiation."""
  x = tf.convert_to_tensor(x, tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(x)
    log_prob, _ = losses.log_prob_and_eps(glow, x, labels=labels)
    total = tf.reduce_sum(log_prob)  # rows are independent: the sum's gradient is each row's
  return tape.gradient(total, x)


def tweedie(glow, x, sigma: float, labels=None) -> tf.Tensor:
  """x + sigma^2 grad_x log p(x): the denoised images (x itself when sigma is 0)."""
  if sigma == 0:
    return tf.convert_to_tensor(x, tf.float32)
  return x + sigma**2 * score(glow, x, labels)


def decode(glow, eps, labels=None) -> tf.Tensor:
  """x `[N, H, W, C]` of codes eps `[N, D]`: the flow's decoder, then, for a model trained on
  noised data (`glow.config.noise_sigma` > 0), one Tweedie step. Every image a trained model
  shows (samples, translations, grids, the SavedModel's outputs) comes through here."""
  x, _ = glow.decode(eps, labels=labels)
  return tweedie(glow, x, glow.config.noise_sigma, labels)
