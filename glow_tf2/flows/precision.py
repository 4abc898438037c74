"""Mixed precision: 16-bit networks inside a float32 flow (float16 also wants loss scaling).

`GlowConfig.precision` names one of three settings:

  float32         everything in float32 (the default);
  mixed_bfloat16  the coupling networks and the priors' convolutions compute in bfloat16;
  mixed_float16   the same in float16 (trained with loss scaling: `train/loss_scale.py`).

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
