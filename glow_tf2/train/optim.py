"""Optimisation pieces: warmup schedule, Keras optimizers, multiplicative weight decay, Polyak EMA.

Glow's recipe: Adamax (or Adam) with beta2 = 1 - 1 / (steps_per_epoch * polyak_epochs), a
learning rate rising linearly from 0 over `epochs_warmup` epochs, weight decay applied by
multiplying every weight by `weight_decay` after each update, and a Polyak average (EMA, decay
beta2) of the weights. Here the EMA is not dead weight as in the original: it is a second model
of the same architecture whose variables are the averages, and validation, samples, inference and
export all use it; `--ema_epochs` gives it a horizon of its own (a short run's weights improve
faster than a long average follows them).
"""

import keras
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


class _OneOpUpdates:
  """Each variable's update as one fused TensorFlow op, its scalars built once per `apply`.

  Keras's `update_step` writes Adam's or Adamax's update as a dozen small ops per variable, and
  builds the step's scalars (beta^t, the corrected rate) again for every variable. Tracing those
  was the largest share of a Glow training step's trace (691 variables in the mnist pair:
  docs/benchmarks.md). `ResourceApplyAdam` / `ResourceApplyAdaMax` are the same updates, written
  once in C++, with CPU, GPU and XLA kernels. The slots (Keras's), the checkpoints and the
  distributed update path (`update_step` runs inside `strategy.extended.update`, where each
  handle is the replica's copy) stay Keras's.

  The scalars depend only on the update count and the learning rate, which are the same for
  every variable of one `apply`; they are kept for the graph, rate tensor and dtype they were
  built in, and forgotten at the next `apply`, so a second `apply` in one trace (or eagerly)
  builds its own.
  """

  def apply(self, grads, trainable_variables=None):
    self._scalars = None
    return super().apply(grads, trainable_variables)

  def _step_scalars(self, learning_rate, dtype) -> dict:
    owner = (tf.compat.v1.get_default_graph(), learning_rate, dtype)
    cached = getattr(self, "_scalars", None)
    if cached is None or any(a is not b for a, b in zip(cached[0], owner)):
      step = tf.cast(self.iterations + 1, dtype)
      beta1 = tf.cast(self.beta_1, dtype)
      beta2 = tf.cast(self.beta_2, dtype)
      scalars = {
        "beta1_power": tf.pow(beta1, step),
        "beta2_power": tf.pow(beta2, step),
        "lr": tf.cast(learning_rate, dtype),
        "beta1": beta1,
        "beta2": beta2,
        "epsilon": tf.cast(self.epsilon, dtype),
      }
      self._scalars = cached = (owner, self._fused_scalars(scalars))
    return cached[1]

  def _fused_scalars(self, scalars: dict) -> dict:
    """The fused op's scalar arguments from the step's (subclasses fold their corrections in)."""
    return scalars

  def update_step(self, gradient, variable, learning_rate):
    dtype = tf.as_dtype(variable.dtype)
    scalars = self._step_scalars(learning_rate, dtype)
    # Keras filters out None gradients; a sparse one (an embedding's) is applied densely.
    gradient = tf.cast(tf.convert_to_tensor(gradient), dtype)
    self._apply_one(gradient, variable, self._get_variable_index(variable), scalars)


class Adamax(_OneOpUpdates, keras.optimizers.Adamax):
  """Glow's Adamax: Keras's, with Glow's step size `lr * sqrt(1 - beta2^t) / (1 - beta1^t)`.

  Per variable w with gradient g, at update t = 1, 2, ... (Glow's optim.adamax):

    m_t = beta1 * m_{t-1} + (1 - beta1) * g
    u_t = max(beta2 * u_{t-1}, |g|)
    w_t = w_{t-1} - lr_t * sqrt(1 - beta2^t) / (1 - beta1^t) * m_t / (u_t + epsilon)

  Keras's Adamax lacks the sqrt(1 - beta2^t) factor. With Glow's beta2 = 1 - 1/N
  (N = steps_per_epoch * polyak_epochs) that factor is about sqrt(t / N) early on, so Keras's
  first steps are up to sqrt(N) times larger (28x for CIFAR-10's N = 782): the warm-up Glow
  relied on is partly undone. `ResourceApplyAdaMax` is the update above with the rate
  lr_t / (1 - beta1^t); it is given lr_t * sqrt(1 - beta2^t). The slots are Keras's (m, u).
  """

  def _fused_scalars(self, scalars: dict) -> dict:
    beta2_power = scalars.pop("beta2_power")
    return {**scalars, "lr": scalars["lr"] * tf.sqrt(1.0 - beta2_power)}

  def _apply_one(self, gradient, variable, index, scalars):
    tf.raw_ops.ResourceApplyAdaMax(
      var=variable.handle,
      m=self._m[index].handle,
      v=self._u[index].handle,
      grad=gradient,
      **scalars,
    )


class Adam(_OneOpUpdates, keras.optimizers.Adam):
  """Keras's Adam (the bias-corrected update Glow used), one fused op per variable:

    m_t = beta1 * m_{t-1} + (1 - beta1) * g,  v_t = beta2 * v_{t-1} + (1 - beta2) * g^2
    w_t = w_{t-1} - lr_t * sqrt(1 - beta2^t) / (1 - beta1^t) * m_t / (sqrt(v_t) + epsilon)

  exactly `ResourceApplyAdam`'s. The slots are Keras's (momentums, velocities); no AMSGrad.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if self.amsgrad:
      raise ValueError("optim.Adam: AMSGrad is not supported")

  def _apply_one(self, gradient, variable, index, scalars):
    tf.raw_ops.ResourceApplyAdam(
      var=variable.handle,
      m=self._momentums[index].handle,
      v=self._velocities[index].handle,
      grad=gradient,
      **scalars,
    )


def make_optimizer(
  name: str, learning_rate, beta1: float, beta2: float, label: str = "optimizer"
) -> keras.optimizers.Optimizer:
  """Adam (`Adam`, the bias-corrected update Glow used) or Glow's Adamax (`Adamax`)."""
  if name == "adam":
    return Adam(learning_rate, beta_1=beta1, beta_2=beta2, epsilon=1e-8, name=label)
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
    """a <- decay * a + (1 - decay) * s, written a <- a - (1 - decay) * (a - s): five ops per
    variable with the rate built once, where the first form takes eight (a training step traces
    this for every variable of both models)."""
    rate = tf.constant(1.0 - self.decay, tf.float32)
    for s, a in zip(self.source, self.averaged):
      if s.trainable:
        a.assign_sub(tf.cast(rate, a.dtype) * (a - s))
      else:
        a.assign(s)
