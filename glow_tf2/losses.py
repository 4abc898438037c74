"""From uint8 images to Glow's continuous space and back, and Glow's objective in bits/dim.

With n_bins = 2**n_bits_x, an image is quantised to k = floor(x / 2**(8 - n_bits_x)) in
{0, ..., n_bins - 1} and mapped to x = k / n_bins - 0.5 + u, with u ~ U(0, 1/n_bins) during
training (dequantisation) or u = 1 / (2 n_bins), the centre of the bin, for a deterministic value.

The model density p over the continuous x gives a lower bound on the log-probability of the
discrete image (Theis et al. 2016): log P(k) >= log p(x) - D log(n_bins), D = H W C, and Glow
reports bits per dimension = -(log p(x) - D log n_bins) / (D ln 2).

The pix2pix-flow objective, per example: bits/dim of each model, the code loss, the class loss.

One domain's model is a `glow_tf2.train.model.FlowModel`: a `Glow` plus, for a class-conditional run with
`--weight_y > 0`, Glow's class-prediction head (a zero-initialised linear map of the spatial mean
of the top-level latent z_top). Both sides of a joint run are two `FlowModel`s; the EMA copy of
a side is a third `FlowModel` of the same architecture.

For a pair (x_A, x_B) with standardized latents eps_A = encode_A(x_A), eps_B = encode_B(x_B):

  code_loss = mean_d |eps_A,d - eps_B,d|^p        (p = 2 for l2, 1 for l1; d over the top block
                                                   for code_last, over all D dims for code_all)
  translation = mean_pixels |g_B(eps_A) - x_B|^p + mean_pixels |g_A(eps_B) - x_A|^p
                                                  (g_X: model X's decoder; only with
                                                   translation_loss_scale > 0)
  loss_A = mle_loss_scale * bits_x_A + weight_y * bits_y_A + code_loss_scale * code_loss
           + translation_loss_scale * translation
  loss_B likewise, with the same code_loss and translation values.

Gradients of loss_A must reach only A and of loss_B only B. `side_losses` gets both from one
backward pass of loss_A + loss_B by stopping the gradient of the other side's eps in each code
term: d(loss_A + loss_B)/d theta_A = d loss_A / d theta_A, exactly. The translation term depends
on both models at once (A's encoder and B's decoder), so no stop_gradient can split it; it is
returned as a `shared` term that the total counts once (`total_loss`), which again gives each
model exactly the gradient of its own loss.
"""

import math

import tensorflow as tf

from glow_tf2.flows import dequantizer
from glow_tf2.flows.glow import Glow


def preprocess(images, n_bits_x: int = 8, noise: bool = True, seed=None) -> tf.Tensor:
  """uint8 `[..., H, W, C]` -> float32 in [-0.5, 0.5], dequantised with uniform noise or mid-bin.

  Args:
    images: uint8 (or integer-valued) images.
    n_bits_x: bits kept per channel.
    noise: add U(0, 1/n_bins) noise (training, Glow's reported test bits/dim); False puts every
      value at the centre of its bin (deterministic).
    seed: a stateless seed `[2]` for the noise; None uses TF's stateful generator.
  """
  centre = dequantizer.centred(images, n_bits_x)
  if not noise:
    return centre
  # U(0, 1) noise in each bin of width 1 / n_bins: the bin's centre plus U(-half, half).
  half = 0.5 / 2.0**n_bits_x
  if seed is None:
    u = tf.random.uniform(tf.shape(centre), -half, half)
  else:
    u = tf.random.stateless_uniform(tf.shape(centre), seed, -half, half)
  return centre + u


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


def dequantize(images, n_bits_x: int, uniform) -> tf.Tensor:
  """uint8 images -> continuous x = k / n_bins - 0.5 + u / n_bins, with u in [0, 1) given.

  `uniform` is U(0, 1) noise shaped like the images; passing it in (instead of drawing it here)
  lets the trainer make the noise of every example a function of the step and of its row in the
  global batch only, so a run gives the same numbers on any number of replicas.
  """
  n_bins = 2.0**n_bits_x
  centre = preprocess(images, n_bits_x, noise=False)  # k/n_bins - 0.5 + 0.5/n_bins
  return centre + (tf.cast(uniform, tf.float32) - 0.5) / n_bins


def dequantize_with_noise(images, n_bits_x: int, seed, row_offset=0, global_rows=None) -> tf.Tensor:
  """uint8 images -> x = k / n_bins - 0.5 + u / n_bins with u ~ U(0, 1) drawn from `seed`.

  The one place training, validation and initialisation draw their dequantisation noise. The
  noise is drawn for a whole global batch of `global_rows` rows (default: these images' rows)
  and rows [row_offset, row_offset + N) are taken, so the noise of an example depends only on
  the stateless `seed` `[2]` and its row in the global batch, not on how the batch is split
  over replicas: a run gives the same numbers on any number of them.

  Args:
    images: uint8 `[N, H, W, C]`.
    n_bits_x: bits kept per channel.
    seed: a stateless seed, int `[2]` (see `glow_tf2.train.streams`).
    row_offset: the first row of these images in the global batch (a replica's offset).
    global_rows: rows of the global batch (None: N).
  """
  shape = tf.shape(images)
  rows = shape[0] if global_rows is None else global_rows
  full = tf.random.stateless_uniform(tf.concat([[rows], shape[1:]], 0), seed)
  return dequantize(images, n_bits_x, full[row_offset : row_offset + shape[0]])


def dequantize_variational(
  dequantizer, images, n_bits_x: int, seed, row_offset=0, global_rows=None
) -> tuple[tf.Tensor, tf.Tensor]:
  """(x, log q(u | k) `[N]`): images dequantised by a learned q (`flows.dequantizer`).

  Its eps ~ N(0, I) is drawn for the global batch from the stateless `seed` and sliced at
  `row_offset`, as `dequantize_with_noise` draws its uniform noise: an example's noise depends on
  the seed and its global row only, whatever the replica count.
  """
  shape = tf.shape(images)
  rows = shape[0] if global_rows is None else global_rows
  full = tf.random.stateless_normal(tf.concat([[rows], shape[1:]], 0), seed)
  return dequantizer.sample(images, n_bits_x, full[row_offset : row_offset + shape[0]])


def code_distance(eps_a, eps_b, top_dim: int, code_loss_type: str, code_loss_fn: str) -> tf.Tensor:
  """Per example `[N]`: mean over the compared dims of |eps_a - eps_b|^p."""
  if code_loss_type == "code_last":
    eps_a, eps_b = eps_a[..., -top_dim:], eps_b[..., -top_dim:]
  elif code_loss_type != "code_all":
    raise ValueError(f"code_loss_type must be code_last or code_all, got {code_loss_type!r}")
  return _mean_error(eps_a - eps_b, code_loss_fn)


def _mean_error(diff, code_loss_fn: str) -> tf.Tensor:
  """Per example `[N]`: mean over the last axis of |diff|^p (p = 2 for l2, 1 for l1)."""
  if code_loss_fn == "l2":
    return tf.reduce_mean(tf.square(diff), axis=-1)
  if code_loss_fn == "l1":
    return tf.reduce_mean(tf.abs(diff), axis=-1)
  raise ValueError(f"code_loss_fn must be l2 or l1, got {code_loss_fn!r}")


EPS_CLIP = 5.0


def _clipped_codes(eps) -> tf.Tensor:
  return tf.clip_by_value(tf.stop_gradient(eps), -EPS_CLIP, EPS_CLIP)


def decodable_rows(glow: Glow, eps, labels=None) -> tf.Tensor:
  """bool `[N]`: the rows of `eps` (clipped as `translation_distance` clips them) that `glow`
  decodes to finite pixels.

  Run it outside any gradient tape, before the translation term: a row that overflows inside a
  decoder has inf or NaN intermediates, and its backward pass is NaN even where the output is
  clipped (0 * inf), which poisons every row's gradient. Measured on the mnist preset with Adam
  (2026-12-07): from the first epochs some rows of every batch overflowed, the whole term was
  dropped at every step (`translation_dropped` = 1), and the pair trained without it.
  """
  x = glow.decode(_clipped_codes(eps), labels=labels)[0]
  return tf.reduce_all(tf.math.is_finite(tf.reshape(x, [tf.shape(x)[0], -1])), axis=1)


def translation_distance(
  glow_a: Glow,
  glow_b: Glow,
  eps_a,
  eps_b,
  target_a,
  target_b,
  code_loss_fn: str,
  labels=None,
  keep=None,
) -> tf.Tensor:
  """Per example `[N]`: how far both translations land from the true partners, in pixels.

    d = mean_pixels |g_B(eps_A) - x_B|^p + mean_pixels |g_A(eps_B) - x_A|^p

  with g_X the decoder of model X and targets x in the models' [-0.5, 0.5] scale. The original's
  `B_all` loss meant the first term but cast the decoded image to uint8, which has no gradient,
  so it never trained anything. Pulling codes together (the code loss) measures the mismatch in
  eps; a model whose decoder amplifies some directions of eps (edges: nearly binary images) can
  turn a small code mismatch into large pixel errors, which only a loss in pixels sees.

  The codes enter as constants (`tf.stop_gradient`): this term trains each model as the target
  of a translation, through its decoder, and leaves the encoders to the code loss. Its backward
  pass then never overlaps the bits/dim one, so the trainer can take its gradient apart and drop
  it on the rare step where a foreign code decodes to inf (see `Trainer._losses_and_grads`).

  `keep` (bool `[N]` for A -> B and for B -> A, from `decodable_rows`) leaves out the rows whose
  translation overflows: their codes are replaced by zeros (which decode finitely) before
  decoding and their distance by 0, so their backward pass is finite and the other rows still
  train the decoders.
  """

  def distance(predicted, target):
    return _mean_error(tf.reshape(predicted - target, [tf.shape(target)[0], -1]), code_loss_fn)

  # Early in training a code can fall far outside what the other model decodes stably (its
  # couplings divide by sigmoid scales): eps is clipped to +-EPS_CLIP (a N(0, 1) draw passes it
  # once in 1.7 million) and the decoded pixels to +-1 (twice the image range), so that one bad
  # example can bound, not poison, the step. Neither clip touches a good translation.
  eps_a, eps_b = _clipped_codes(eps_a), _clipped_codes(eps_b)
  if keep is not None:
    keep_a2b, keep_b2a = keep
    eps_a = tf.where(_rows(keep_a2b, eps_a), eps_a, tf.zeros_like(eps_a))
    eps_b = tf.where(_rows(keep_b2a, eps_b), eps_b, tf.zeros_like(eps_b))
  a2b = distance(_bounded_pixels(glow_b.decode(eps_a, labels=labels)[0]), target_b)
  b2a = distance(_bounded_pixels(glow_a.decode(eps_b, labels=labels)[0]), target_a)
  if keep is not None:
    a2b = tf.where(keep_a2b, a2b, tf.zeros_like(a2b))
    b2a = tf.where(keep_b2a, b2a, tf.zeros_like(b2a))
  return a2b + b2a


def _rows(keep, like) -> tf.Tensor:
  """keep `[N]` shaped to broadcast over the rows of `like` `[N, ...]`."""
  return tf.reshape(keep, tf.concat([tf.shape(keep), tf.ones([tf.rank(like) - 1], tf.int32)], 0))


def _bounded_pixels(x) -> tf.Tensor:
  """Decoded pixels clipped to +-1; a pixel that decoded to NaN counts as +1 (an error >= 0.5).

  A clip passes NaN through (inf - inf inside a decoder gives NaN, not inf), and one NaN pixel
  would make the whole test loss NaN; counted as a bound it keeps the metric finite and large.
  """
  return tf.where(tf.math.is_nan(x), tf.ones_like(x), tf.clip_by_value(x, -1.0, 1.0))


def total_loss(losses: dict[str, tf.Tensor], shared: tf.Tensor | None) -> tf.Tensor:
  """The sum of the sides' losses (already reduced), with a shared term counted once.

  Each side's loss holds the shared (translation) term; summing the losses would give each
  model twice its gradient of it. Subtracting the extra copies leaves
  d total / d theta_X = d loss_X / d theta_X for every side X.
  """
  total = tf.add_n(list(losses.values()))
  if shared is not None:
    total -= (len(losses) - 1) * shared
  return total


def side_losses(
  terms: dict[str, dict[str, tf.Tensor]],
  loss_config,
  top_dim: int,
  translation: tf.Tensor | None = None,
):
  """Per-example losses of each side and the code loss, from `FlowModel.objective` outputs.

  Args:
    terms: {"A": objective_A, "B": objective_B} (or only "A" for one domain).
    loss_config: a `config.LossConfig`.
    top_dim: size of the top block of eps.
    translation: `translation_distance` `[N]`, added (scaled) to both losses with joint
      training; None: no translation term.

  Returns:
    (losses, code, shared) where losses = {side: `[N]`}, code is `[N]` (None with one domain)
    and shared is the scaled translation term `[N]` that every loss holds (None without one):
    give `total_loss` the reduced losses and shared term. Each side's loss sees the other
    side's eps through `tf.stop_gradient`, so the gradient of the total with respect to one
    model equals the gradient of that model's own loss.
  """
  losses = {}
  for side, t in terms.items():
    losses[side] = loss_config.mle_loss_scale * t["bits_x"] + loss_config.weight_y * t["bits_y"]
  if len(terms) < 2:
    return losses, None, None
  eps_a, eps_b = terms["A"]["eps"], terms["B"]["eps"]
  kind, fn = loss_config.code_loss_type, loss_config.code_loss_fn
  code = code_distance(eps_a, eps_b, top_dim, kind, fn)
  if loss_config.joint_train:
    scale = loss_config.code_loss_scale
    losses["A"] += scale * code_distance(eps_a, tf.stop_gradient(eps_b), top_dim, kind, fn)
    losses["B"] += scale * code_distance(tf.stop_gradient(eps_a), eps_b, top_dim, kind, fn)
  shared = None
  if loss_config.joint_train and translation is not None:
    shared = loss_config.translation_loss_scale * translation
    for side in losses:
      losses[side] += shared
  return losses, code, shared
