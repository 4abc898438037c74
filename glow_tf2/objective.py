"""The pix2pix-flow objective, per example: bits/dim of each model, the code loss, the class loss.

One domain's model is a `FlowModel`: a `Glow` plus, for a class-conditional run with
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
from typing import Dict, Optional

import tensorflow as tf

from glow_tf2 import quantization
from glow_tf2.glow import Glow


def dequantize(images, n_bits_x: int, uniform) -> tf.Tensor:
  """uint8 images -> continuous x = k / n_bins - 0.5 + u / n_bins, with u in [0, 1) given.

  `uniform` is U(0, 1) noise shaped like the images; passing it in (instead of drawing it here)
  lets the trainer make the noise of every example a function of the step and of its row in the
  global batch only, so a run gives the same numbers on any number of replicas.
  """
  n_bins = 2.0**n_bits_x
  centre = quantization.preprocess(images, n_bits_x, noise=False)  # k/n_bins - 0.5 + 0.5/n_bins
  return centre + (tf.cast(uniform, tf.float32) - 0.5) / n_bins


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


def translation_distance(glow_a: Glow, glow_b: Glow, eps_a, eps_b, target_a, target_b,
                         code_loss_fn: str, labels=None) -> tf.Tensor:
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
  """
  def distance(predicted, target):
    return _mean_error(tf.reshape(predicted - target, [tf.shape(target)[0], -1]), code_loss_fn)
  # Early in training a code can fall far outside what the other model decodes stably (its
  # couplings divide by sigmoid scales): eps is clipped to +-EPS_CLIP (a N(0, 1) draw passes it
  # once in 1.7 million) and the decoded pixels to +-1 (twice the image range), so that one bad
  # example can bound, not poison, the step. Neither clip touches a good translation.
  eps_a, eps_b = (tf.clip_by_value(tf.stop_gradient(e), -EPS_CLIP, EPS_CLIP)
                  for e in (eps_a, eps_b))
  a2b = glow_b.decode(eps_a, labels=labels)[0]
  b2a = glow_a.decode(eps_b, labels=labels)[0]
  return (distance(tf.clip_by_value(a2b, -1.0, 1.0), target_b)
          + distance(tf.clip_by_value(b2a, -1.0, 1.0), target_a))


def total_loss(losses: Dict[str, tf.Tensor], shared: Optional[tf.Tensor]) -> tf.Tensor:
  """The sum of the sides' losses (already reduced), with a shared term counted once.

  Each side's loss holds the shared (translation) term; summing the losses would give each
  model twice its gradient of it. Subtracting the extra copies leaves
  d total / d theta_X = d loss_X / d theta_X for every side X.
  """
  total = tf.add_n(list(losses.values()))
  if shared is not None:
    total -= (len(losses) - 1) * shared
  return total


class FlowModel(tf.Module):
  """One domain's Glow, with Glow's optional class-prediction head.

  Args:
    glow: the flow.
    class_head: create the head (only meaningful with a class-conditional config).
  """

  def __init__(self, glow: Glow, class_head: bool = False, name: Optional[str] = None):
    super().__init__(name=name or glow.name + "_model")
    self.glow = glow
    self.config = glow.config
    self.class_head = bool(class_head and glow.config.n_classes)
    if self.class_head:
      n_classes, channels = glow.config.n_classes, glow.config.eps_shapes[-1][-1]
      with self.name_scope:
        self.head_kernel = tf.Variable(tf.zeros([channels, n_classes]), name="head_kernel")
        self.head_bias = tf.Variable(tf.zeros([n_classes]), name="head_bias")

  def objective(self, x, labels=None) -> Dict[str, tf.Tensor]:
    """Per-example terms of continuous images x `[N, H, W, C]`.

    Returns a dict with `bits_x` `[N]`, `bits_y` `[N]` (0 without a head), `pred_loss` `[N]`
    (classification error, 0 without a head) and `eps` `[N, D]`.
    """
    config = self.config
    log_prob, eps = quantization.log_prob_and_eps(self.glow, x, labels=labels)
    bits_x = quantization.bits_from_log_prob(log_prob, config.data_dim, config.n_bits_x)
    zeros = tf.zeros_like(bits_x)
    out = {"bits_x": bits_x, "bits_y": zeros, "pred_loss": zeros, "eps": eps}
    if self.class_head:
      logits = self.class_logits(eps, labels)
      labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
      out["bits_y"] = tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels, logits=logits) / math.log(2.0)
      wrong = tf.not_equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
      out["pred_loss"] = tf.cast(wrong, tf.float32)
    return out

  def class_logits(self, eps, labels) -> tf.Tensor:
    """Glow's head: a linear map of mean_hw(z_top), z_top = mean + exp(logs) * eps_top."""
    top_shape = self.config.eps_shapes[-1]
    eps_top = tf.reshape(eps[..., -self.config.top_dim:], (-1,) + top_shape)
    mean, logs = self.glow.top.mean_and_logs(labels)
    z_top = mean + tf.exp(logs) * eps_top
    return tf.reduce_mean(z_top, axis=[1, 2]) @ self.head_kernel + self.head_bias


def side_losses(terms: Dict[str, Dict[str, tf.Tensor]], loss_config, top_dim: int,
                translation: Optional[tf.Tensor] = None):
  """Per-example losses of each side and the code loss, from `FlowModel.objective` outputs.

  Args:
    terms: {"A": objective_A, "B": objective_B} (or only "A" for one domain).
    loss_config: a `train_config.LossConfig`.
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
