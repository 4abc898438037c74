"""Optimisation pieces: warmup schedule, Keras optimizers, multiplicative weight decay, Polyak EMA.

Glow's recipe: Adamax (or Adam) with beta2 = 1 - 1 / (steps_per_epoch * polyak_epochs), a
learning rate rising linearly from 0 over `epochs_warmup` epochs, weight decay applied by
multiplying every weight by `weight_decay` after each update, and a Polyak average (EMA, decay
beta2) of the weights. Here the EMA is not dead weight as in the original: it is a second model
of the same architecture whose variables are the averages, and validation, samples, inference and
export all use it.
"""

import keras
from keras import ops
import tensorflow as tf


class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
  """lr * min(1, (step + 1) / warmup_steps); step is the optimizer's 0-based update count.

  With `again_at` = S > 0 the rate warms up a second time from update S on, to `lr_after`
  (default `lr`): lr_after * min(1, (step - S + 1) / warmup_steps). A warm start's switch from
  each model alone to the joint objective is a new problem for the same optimizer state: at full
  rate its first updates broke the models, and with Adam the joint objective needed a lower peak
  than the models alone (docs/results.md). An optimizer first stepped at the switch (the coupled
  prior's) counts from 0, so it warms up once, to `lr`.
  """

  def __init__(self, lr: float, warmup_steps: float, again_at: int = 0, lr_after: float = 0.0):
    self.lr = float(lr)
    self.warmup_steps = float(warmup_steps)
    self.again_at = int(again_at)
    self.lr_after = float(lr_after) or self.lr

  def _ramp(self, steps):
    """min(1, (steps + 1) / warmup_steps): 1 without a warmup."""
    if self.warmup_steps <= 0:
      return tf.ones_like(steps)
    return tf.minimum(1.0, (steps + 1.0) / self.warmup_steps)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    rate = self.lr * self._ramp(step)
    if self.again_at > 0:
      since = step - float(self.again_at)
      rate = tf.where(since >= 0, self.lr_after * self._ramp(since), rate)
    return rate

  def get_config(self):
    return {
      "lr": self.lr,
      "warmup_steps": self.warmup_steps,
      "again_at": self.again_at,
      "lr_after": self.lr_after,
    }


class Adamax(keras.optimizers.Adamax):
  """Glow's Adamax: Keras's, with Glow's step size `lr * sqrt(1 - beta2^t) / (1 - beta1^t)`.

  Per variable w with gradient g, at update t = 1, 2, ... (Glow's optim.adamax):

    m_t = beta1 * m_{t-1} + (1 - beta1) * g
    u_t = max(beta2 * u_{t-1}, |g|)
    w_t = w_{t-1} - lr_t * sqrt(1 - beta2^t) / (1 - beta1^t) * m_t / (u_t + epsilon)

  Keras's Adamax lacks the sqrt(1 - beta2^t) factor. With Glow's beta2 = 1 - 1/N
  (N = steps_per_epoch * polyak_epochs) that factor is about sqrt(t / N) early on, so Keras's
  first steps are up to sqrt(N) times larger (28x for CIFAR-10's N = 782): the warm-up Glow
  relied on is partly undone. Only the step size is changed, so the slots (m, u), checkpoints
  and the distributed update path are Keras's own.
  """

  def update_step(self, gradient, variable, learning_rate):
    local_step = ops.cast(self.iterations + 1, variable.dtype)
    beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), local_step)
    corrected = ops.multiply(ops.cast(learning_rate, variable.dtype), ops.sqrt(1 - beta_2_power))
    super().update_step(gradient, variable, corrected)


def make_optimizer(
  name: str, learning_rate, beta1: float, beta2: float, label: str = "optimizer"
) -> keras.optimizers.Optimizer:
  """Adam (Keras's update is the bias-corrected one Glow used) or Glow's Adamax (`Adamax`)."""
  if name == "adam":
    return keras.optimizers.Adam(
      learning_rate, beta_1=beta1, beta_2=beta2, epsilon=1e-8, name=label
    )
  if name == "adamax":
    return Adamax(learning_rate, beta_1=beta1, beta_2=beta2, epsilon=1e-8, name=label)
  raise ValueError(f"optimizer must be adam or adamax, got {name!r}")


def decay_weights(variables, factor: float) -> None:
  """Multiplicative weight decay: v <- factor * v. Call in cross-replica context."""
  if factor == 1.0:
    return
  for v in variables:
    v.assign(v * factor)


class PolyakAverage:
  """Keeps `averaged` (a model's variables) as the EMA of `source` (another model's).

  The two lists must correspond one to one (two models built from the same config and seed).
  Variables that are not trainable (fixed permutations) are copied rather than averaged.
  `update` runs in cross-replica context, after the optimizer step; on MirroredVariables the
  assignment then writes every replica's copy with the same value.
  """

  def __init__(self, source_model, averaged_model, decay: float):
    self.source = list(source_model.variables)
    self.averaged = list(averaged_model.variables)
    if len(self.source) != len(self.averaged):
      raise ValueError(
        f"PolyakAverage: {len(self.source)} source variables but {len(self.averaged)} averaged ones"
      )
    for s, a in zip(self.source, self.averaged):
      if s.shape != a.shape:
        raise ValueError(f"PolyakAverage: {s.name} {s.shape} does not match {a.name} {a.shape}")
    self.decay = float(decay)

  def reset(self) -> None:
    """averaged <- source (after initialisation or a restore of the source only)."""
    for s, a in zip(self.source, self.averaged):
      a.assign(s)

  def update(self) -> None:
    for s, a in zip(self.source, self.averaged):
      if s.trainable:
        a.assign(self.decay * a + (1.0 - self.decay) * s)
      else:
        a.assign(s)
