"""One domain's model: a `Glow` plus Glow's optional class-prediction head and, with
`--dequantization=variational`, its learned dequantisation noise q(u | k).

Both sides of a joint run are two `FlowModel`s; the EMA copy of a side is a third `FlowModel` of
the same architecture. The head is a zero-initialised linear map of the spatial mean of the
top-level latent z_top (Glow's `--weight_y > 0`). The dequantizer (`flows.dequantizer`) is a
child of the model, so the side's optimizer, weight decay, EMA and checkpoints take its
variables with the Glow's (under `model/dequantizer/`); a uniform model has none, and its
checkpoints are those of before.
"""

import math

import tensorflow as tf

from glow_tf2 import losses
from glow_tf2.flows.dequantizer import Dequantizer
from glow_tf2.flows.glow import Glow


class FlowModel(tf.Module):
  """One domain's Glow, with Glow's optional class-prediction head.

  Args:
    glow: the flow.
    class_head: create the head (only meaningful with a class-conditional config).
    seed: seeds the dequantizer's initial weights (a variational config only).
  """

  def __init__(self, glow: Glow, class_head: bool = False, name: str | None = None, seed: int = 0):
    super().__init__(name=name or glow.name + "_model")
    self.glow = glow
    self.config = glow.config
    self.dequantizer = None
    if glow.config.variational:
      with self.name_scope:
        self.dequantizer = Dequantizer(glow.config.image_shape, seed=seed)
    self.class_head = bool(class_head and glow.config.n_classes)
    if self.class_head:
      n_classes, channels = glow.config.n_classes, glow.config.eps_shapes[-1][-1]
      with self.name_scope:
        self.head_kernel = tf.Variable(tf.zeros([channels, n_classes]), name="head_kernel")
        self.head_bias = tf.Variable(tf.zeros([n_classes]), name="head_bias")

  def objective(self, x, labels=None, log_q=None) -> dict[str, tf.Tensor]:
    """Per-example terms of continuous images x `[N, H, W, C]`.

    Returns a dict with `bits_x` `[N]`, `bits_y` `[N]` (0 without a head), `pred_loss` `[N]`
    (classification error, 0 without a head) and `eps` `[N, D]` (and `variational`: True with
    `log_q`). With `log_q` `[N]`, the
    log-density of x's noise under the dequantizer, bits_x is the variational bound
    -(log p(x) - D log n_bins - log q) / (D ln 2); without it, Glow's bits/dim (log q = 0, the
    uniform noise's).
    """
    config = self.config
    log_prob, eps = losses.log_prob_and_eps(self.glow, x, labels=labels)
    if log_q is not None:
      log_prob -= log_q
    bits_x = losses.bits_from_log_prob(log_prob, config.data_dim, config.n_bits_x)
    zeros = tf.zeros_like(bits_x)
    out = {"bits_x": bits_x, "bits_y": zeros, "pred_loss": zeros, "eps": eps}
    if log_q is not None:
      out["variational"] = True  # bits_x is the bound, logged apart from Glow's bits/dim
    if self.class_head:
      logits = self.class_logits(eps, labels)
      labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
      out["bits_y"] = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits
      ) / math.log(2.0)
      wrong = tf.not_equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
      out["pred_loss"] = tf.cast(wrong, tf.float32)
    return out

  def class_logits(self, eps, labels) -> tf.Tensor:
    """Glow's head: a linear map of mean_hw(z_top), z_top = mean + exp(logs) * eps_top."""
    top_shape = self.config.eps_shapes[-1]
    eps_top = tf.reshape(eps[..., -self.config.top_dim :], (-1,) + top_shape)
    mean, logs = self.glow.top.mean_and_logs(labels)
    z_top = mean + tf.exp(logs) * eps_top
    return tf.reduce_mean(z_top, axis=[1, 2]) @ self.head_kernel + self.head_bias
