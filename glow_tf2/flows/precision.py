"""Mixed precision: 16-bit networks inside a float32 flow, and loss scaling for float16.

`GlowConfig.precision` names one of three settings:

  float32         everything in float32 (the default);
  mixed_bfloat16  the coupling networks and the priors' convolutions compute in bfloat16;
  mixed_float16   the same in float16 (needs loss scaling in training: `DynamicLossScale`).

What is 16-bit and what is not. Every variable stays float32 and is cast at use, so the optimizer
updates float32 weights. The networks (3x3 conv -> ReLU -> 1x1 -> ReLU -> zero 3x3 conv) read
their input cast to 16 bits and return float32; everything the change of variables is made of
stays float32: ActNorm, the 1x1 invertible convolutions, the coupling's affine update
z2 = (x2 + t) * sigmoid(r + 2), every log-determinant, the priors' standardisation
(z - mean) * exp(-logs) and their log-probabilities, and the loss.

Why the flow stays exactly invertible. A coupling's network output h = f(x1) depends only on x1,
which both directions see bit for bit, so encoding and decoding compute the very same h (the same
16-bit ops on the same inputs), and x2 -> z2 -> x2 differs from the identity only by float32
rounding of the affine map. The log-det of decoding is minus that of encoding exactly, for the
same reason. What 16 bits change is the model (f is a slightly different function), not its
invertibility: log-likelihoods of the mixed model are close to, not equal to, the float32 one's.

Which to use where: bfloat16 on CPUs with AVX512_BF16 or AMX and on Ampere or later GPUs (float32's
exponent range, so no loss scaling); float16 on older GPUs (Volta, Turing), with loss scaling,
because its 5-bit exponent flushes small gradients to zero.
"""

import tensorflow as tf

from glow_tf2.config import PRECISIONS

_COMPUTE_DTYPES = {
  "float32": tf.float32,
  "mixed_bfloat16": tf.bfloat16,
  "mixed_float16": tf.float16,
}


def compute_dtype(precision: str) -> tf.DType:
  """The dtype the networks compute in under `precision` (see the module docstring)."""
  if precision not in _COMPUTE_DTYPES:
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
  return _COMPUTE_DTYPES[precision]


def needs_loss_scale(precision: str) -> bool:
  """True for float16, whose small gradients underflow without loss scaling."""
  return compute_dtype(precision) == tf.float16


def cast(x: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
  """x as dtype, adding no op when it already is (float32 graphs stay exactly as before)."""
  return x if x.dtype == dtype else tf.cast(x, dtype)


class DynamicLossScale(tf.Module):
  """Dynamic loss scaling for float16 training (Micikevicius et al. 2018).

  The loss is multiplied by a scale S before differentiation, so float16 gradients of the
  activations stay above float16's smallest normal number (6e-5); the float32 gradients of the
  variables are divided by S again. When any gradient is inf or NaN the step must be skipped and
  S is halved; after `growth_interval` finite steps in a row S is doubled.

  In a training step (inside `tf.function`):

      with tf.GradientTape() as tape:
        loss = ...
        scaled = loss_scale.scale_loss(loss)
      grads, finite = loss_scale.unscale(tape.gradient(scaled, variables))
      if finite:  # autograph: a tf.cond; build the optimizer's slots before the first trace
        optimizer.apply_gradients(zip(grads, variables))

  Args:
    initial_scale: S at the start (2^15, as Keras and PyTorch start).
    growth_interval: finite steps in a row before S doubles.
    factor: the multiplier of S on growth, its divisor on overflow.
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
    """loss * S (float32)."""
    return tf.cast(loss, tf.float32) * self.scale

  def unscale(self, grads):
    """(grads / S, finite): finite is a bool scalar, False if any gradient has an inf or NaN.

    Updates S: halved on overflow (never below 1), doubled after `growth_interval` finite steps.
    None gradients (variables the loss does not reach) stay None.
    """
    inverse = 1.0 / self.scale
    unscaled = [None if g is None else g * tf.cast(inverse, g.dtype) for g in grads]
    checks = [tf.reduce_all(tf.math.is_finite(g)) for g in unscaled if g is not None]
    finite = tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)
    grown = self.good_steps + 1 >= self.growth_interval
    new_scale = tf.where(
      finite,
      tf.where(grown, self.scale * self.factor, self.scale),
      tf.maximum(self.scale / self.factor, 1.0),
    )
    new_good = tf.where(finite & ~grown, self.good_steps + 1, tf.zeros_like(self.good_steps))
    self.scale.assign(new_scale)
    self.good_steps.assign(new_good)
    return unscaled, finite
