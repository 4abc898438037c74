"""Optimisation pieces: warmup schedule, Keras optimizers, multiplicative weight decay, Polyak EMA.

Glow's recipe: Adamax (or Adam) with beta2 = 1 - 1 / (steps_per_epoch * polyak_epochs), a
learning rate rising linearly from 0 over `epochs_warmup` epochs, weight decay applied by
multiplying every weight by `weight_decay` after each update, and a Polyak average (EMA, decay
beta2) of the weights. Here the EMA is not dead weight as in the original: it is a second model
of the same architecture whose variables are the averages, and validation, samples, inference and
export all use it.
"""

import keras
import tensorflow as tf


class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
  """lr * min(1, (step + 1) / warmup_steps); step is the optimizer's 0-based update count."""

  def __init__(self, lr: float, warmup_steps: float):
    self.lr = float(lr)
    self.warmup_steps = float(warmup_steps)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    if self.warmup_steps <= 0:
      return tf.fill([], self.lr)
    return self.lr * tf.minimum(1.0, (step + 1.0) / self.warmup_steps)

  def get_config(self):
    return {"lr": self.lr, "warmup_steps": self.warmup_steps}


def make_optimizer(
  name: str, learning_rate, beta1: float, beta2: float, label: str = "optimizer"
) -> keras.optimizers.Optimizer:
  """Keras's Adam or Adamax (Adam's update is the bias-corrected one Glow used)."""
  if name == "adam":
    return keras.optimizers.Adam(
      learning_rate, beta_1=beta1, beta_2=beta2, epsilon=1e-8, name=label
    )
  if name == "adamax":
    return keras.optimizers.Adamax(
      learning_rate, beta_1=beta1, beta_2=beta2, epsilon=1e-8, name=label
    )
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
