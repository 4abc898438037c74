"""From uint8 images to Glow's continuous space and back, and Glow's objective in bits/dim.

With n_bins = 2**n_bits_x, an image is quantised to k = floor(x / 2**(8 - n_bits_x)) in
{0, ..., n_bins - 1} and mapped to x = k / n_bins - 0.5 + u, with u ~ U(0, 1/n_bins) during
training (dequantisation) or u = 1 / (2 n_bins), the centre of the bin, for a deterministic value.

The model density p over the continuous x gives a lower bound on the log-probability of the
discrete image (Theis et al. 2016): log P(k) >= log p(x) - D log(n_bins), D = H W C, and Glow
reports bits per dimension = -(log p(x) - D log n_bins) / (D ln 2).
"""

import math

import tensorflow as tf


def preprocess(images, n_bits_x: int = 8, noise: bool = True, seed=None) -> tf.Tensor:
  """uint8 `[..., H, W, C]` -> float32 in [-0.5, 0.5], dequantised with uniform noise or mid-bin.

  Args:
    images: uint8 (or integer-valued) images.
    n_bits_x: bits kept per channel.
    noise: add U(0, 1/n_bins) noise (training, Glow's reported test bits/dim); False puts every
      value at the centre of its bin (deterministic).
    seed: a stateless seed `[2]` for the noise; None uses TF's stateful generator.
  """
  n_bins = 2.0**n_bits_x
  x = tf.cast(images, tf.float32)
  if n_bits_x < 8:
    x = tf.floor(x / 2.0**(8 - n_bits_x))
  x = x / n_bins - 0.5
  if not noise:
    return x + 0.5 / n_bins
  if seed is None:
    u = tf.random.uniform(tf.shape(x), 0.0, 1.0 / n_bins)
  else:
    u = tf.random.stateless_uniform(tf.shape(x), seed, 0.0, 1.0 / n_bins)
  return x + u


def postprocess(x, n_bits_x: int = 8) -> tf.Tensor:
  """Continuous x -> uint8 images: k = floor((x + 0.5) * n_bins) clipped to a level, * 256 / n_bins.

  The clip is on the level k (0..n_bins - 1), not on the pixel value, so an x past the top
  gives the top level (248 at 5 bits), never a value no level maps to.
  """
  n_bins = 2.0**n_bits_x
  k = tf.clip_by_value(tf.floor((tf.cast(x, tf.float32) + 0.5) * n_bins), 0.0, n_bins - 1.0)
  return tf.cast(k * (256.0 / n_bins), tf.uint8)


def bits_from_log_prob(log_prob, data_dim: int, n_bits_x: int) -> tf.Tensor:
  """Glow's bits/dim from the continuous log-density of x: the one place that divides by D ln 2."""
  log_prob = tf.convert_to_tensor(log_prob, tf.float32)
  objective = log_prob - data_dim * n_bits_x * math.log(2.0)  # - D log(n_bins)
  return -objective / (data_dim * math.log(2.0))


def standard_normal_log_prob(eps) -> tf.Tensor:
  """sum_d log N(eps_d; 0, 1) over the last axis."""
  return -0.5 * tf.reduce_sum(tf.square(eps) + math.log(2.0 * math.pi), axis=-1)


def log_prob_and_eps(glow, x, labels=None):
  """(log p(x) `[N]`, eps `[N, D]`) from one encoding pass of a `Glow`."""
  eps, log_det = glow.encode(x, labels=labels)
  return standard_normal_log_prob(eps) + log_det, eps


def bits_per_dim(glow, images, labels=None, noise: bool = True, seed=None) -> tf.Tensor:
  """Glow's objective, per image `[N]`: -(log p(x) - D log n_bins) / (D ln 2).

  Args:
    glow: a `glow_tf2.Glow`.
    images: uint8 `[N, H, W, C]`.
    labels: int `[N]` class labels of a class-conditional model.
    noise: dequantisation noise (as Glow trained and reported) or the deterministic mid-bin value.
    seed: optional stateless seed `[2]` for the noise.
  """
  config = glow.config
  x = preprocess(images, config.n_bits_x, noise=noise, seed=seed)
  log_prob, _ = log_prob_and_eps(glow, x, labels=labels)
  return bits_from_log_prob(log_prob, config.data_dim, config.n_bits_x)
