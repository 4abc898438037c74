"""Dynamic loss scaling for float16 training (Micikevicius et al. 2018, "Mixed Precision Training").

Why. float16 has a 5-bit exponent: its smallest normal number is 6.1e-5 and its smallest
subnormal 6.0e-8, below which a value flushes to zero. The gradients that flow back through the
float16 coupling networks (`--precision=mixed_float16`, `flows.precision`) are the loss's
gradient times many small factors (a mean over the batch and over D dimensions, then each
layer's weights), and many of them fall under 6e-8 and vanish. Multiplying the loss by a scale
S before differentiating multiplies every backward value by S (the chain rule is linear in the
loss), lifting them into float16's range; dividing the float32 gradients of the variables by S
again gives the gradient of the loss itself:

  g = (d (S * loss) / d theta) / S

Dynamic. Too large an S overflows instead (float16's largest value is 65504): a gradient with
an inf or NaN means S was too large for this step. Then the step is skipped (no variable, no
optimizer slot and no EMA moves) and S is halved; after `growth_interval` finite steps in a row
S doubles, to probe whether a larger scale fits again. S never falls below 1.

Why this and not Keras's `LossScaleOptimizer`. A joint step trains two or three optimizers
(model A, model B, the coupled prior) from one tape, and one decision must skip all of them
together with the weight decay and the EMA update that follow in cross-replica context; Keras's
wrapper decides per optimizer, from the first replica's gradients before they are summed (a
replica with a NaN of its own would be applied), and would nest each optimizer's state one
level deeper in the checkpoint. Here one scale serves the whole step: `step.Steps` scales both
tapes, unscales the gradients per replica, sums the replicas' overflows, and under one
`tf.cond` in cross-replica context either applies everything or nothing, then calls `update`.
The scale is a variable of the training checkpoint (`loss_scale/scale`, `loss_scale/good_steps`),
so an exact resume continues with the scale the run had.

Example (one device, inside a `tf.function`):

    with tf.GradientTape() as tape:
      scaled = loss_scale.scale_loss(loss)
    grads, finite = loss_scale.unscale(tape.gradient(scaled, variables))
    tf.cond(finite, lambda: apply(grads), lambda: no_op)
    loss_scale.update(finite)
"""

import tensorflow as tf


class DynamicLossScale(tf.Module):
  """A loss scale S that halves on overflow and doubles after `growth_interval` finite steps.

  `scale_loss` and `unscale` only read S (call them in replica context); `update` writes it
  (call it in cross-replica context, or with no strategy, once per step).

  Args:
    initial_scale: S at the start (2^15, as Keras and PyTorch start).
    growth_interval: finite steps in a row before S doubles.
    factor: the multiplier of S on growth, its divisor on overflow.
    name: the module's name (the prefix of its variables).

  Raises:
    ValueError: initial_scale <= 0, growth_interval < 1 or factor <= 1.
  """

  def __init__(
    self,
    initial_scale: float = 2.0**15,
    growth_interval: int = 2000,
    factor: float = 2.0,
    name: str = "loss_scale",
  ):
    super().__init__(name=name)
    if initial_scale <= 0 or growth_interval < 1 or factor <= 1:
      raise ValueError(
        "DynamicLossScale needs initial_scale > 0, growth_interval >= 1 and factor > 1, got "
        f"{initial_scale}, {growth_interval}, {factor}"
      )
    self.growth_interval = int(growth_interval)
    self.factor = float(factor)
    with self.name_scope:
      self.scale = tf.Variable(float(initial_scale), trainable=False, name="scale")
      self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")

  def scale_loss(self, loss: tf.Tensor) -> tf.Tensor:
    """loss * S (float32). Compute it inside the tape."""
    return tf.cast(loss, tf.float32) * self.scale

  def unscale(self, grads) -> tuple[list, tf.Tensor]:
    """(grads / S, finite): finite is a bool scalar, False if any gradient has an inf or NaN.

    None gradients (variables the loss does not reach) stay None. Reads S only.
    """
    inverse = 1.0 / self.scale
    unscaled = [None if g is None else g * tf.cast(inverse, g.dtype) for g in grads]
    return unscaled, all_finite(unscaled)

  def update(self, finite: tf.Tensor) -> None:
    """After a step: S / factor (never below 1) if not `finite`, S * factor after
    `growth_interval` finite steps in a row, else a finite step counted."""
    finite = tf.convert_to_tensor(finite, tf.bool)
    grown = self.good_steps + 1 >= self.growth_interval
    new_scale = tf.where(
      finite,
      tf.where(grown, self.scale * self.factor, self.scale),
      tf.maximum(self.scale / self.factor, 1.0),
    )
    new_good = tf.where(finite & ~grown, self.good_steps + 1, tf.zeros_like(self.good_steps))
    self.scale.assign(new_scale)
    self.good_steps.assign(new_good)


def all_finite(tensors) -> tf.Tensor:
  """A bool scalar: every element of every tensor (None skipped) is finite; True for none."""
  checks = [tf.reduce_all(tf.math.is_finite(t)) for t in tensors if t is not None]
  return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)
