"""Nothing non-finite is saved: the checks every save runs first, and the error they raise.

A non-finite training loss or evaluation stops the run with `NonFiniteLossError` naming the
step. Before any checkpoint is written, `FiniteChecks.savable` checks every variable, then the
outputs of the weights on a fixed batch: finite weights can still be diverging. Every message
names the latest checkpoint (`last_good_checkpoint`), which is then still the last good one.
"""

import tensorflow as tf

from glow_tf2 import losses as losses_lib


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


def last_good_checkpoint(checkpoint_dir: str) -> str:
  """What a rerun resumes from, for error messages."""
  latest = tf.train.latest_checkpoint(checkpoint_dir)
  if latest:
    return f"the last good checkpoint is {latest} (a rerun resumes from it)"
  return f"no checkpoint was saved in {checkpoint_dir} (a rerun starts afresh)"


class FiniteChecks:
  """The checks of the weights about to be saved.

  Args:
    sides: the run's sides (`sides.Side`).
    coupling: the pair's coupled prior (`sides.Coupling`) or None.
    steps: the run's `step.Steps` (the labels of a batch).
    fixed_batch: returns the fixed batch of test images the outputs are checked on.
    n_bits_x: the models' bits per colour channel.
    checkpoint_dir: the run's training checkpoints (named in the messages).
  """

  def __init__(self, sides, coupling, steps, fixed_batch, n_bits_x: int, checkpoint_dir: str):
    self.sides, self.coupling, self.steps = sides, coupling, steps
    self.fixed_batch = fixed_batch
    self.n_bits_x = n_bits_x
    self.checkpoint_dir = checkpoint_dir
    self._outputs_finite = None  # `outputs`' traced function

  def last_good_checkpoint(self) -> str:
    return last_good_checkpoint(self.checkpoint_dir)

  def variables(self, step: int) -> None:
    """Raises NonFiniteLossError if any model, EMA or optimizer variable is NaN or infinite
    (the coupled prior's, its EMA's and its optimizer's too)."""
    groups = [
      (f"model {side.key}", [*side.model.variables, *side.ema.variables, *side.optimizer.variables])
      for side in self.sides
    ]
    if self.coupling:
      coupling = self.coupling
      variables = [*coupling.prior.variables, *coupling.ema.variables]
      groups.append(("the coupled prior", variables + list(coupling.optimizer.variables)))
    for what, variables in groups:
      floating = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
      finite = all_finite(floating).numpy() if floating else []
      bad = [v.name for v, ok in zip(floating, finite) if not ok]
      if bad:
        raise NonFiniteLossError(
          f"non-finite weights of {what} at step {step} ({', '.join(bad[:3])}"
          f"{', ...' if len(bad) > 3 else ''}): not saved, training stopped, "
          f"{self.last_good_checkpoint()}"
        )

  def outputs(self, step: int) -> None:
    """Raises NonFiniteLossError if the weights about to be saved, finite as they are, give a
    non-finite result on the fixed batch (the first test images, mid-bin).

    Finite weights can still be diverging: an ActNorm scale of 1e30 is finite, its exp is not.
    The last step's loss was computed before its update, so only a forward pass of the new
    weights shows it. For each side, the training and the EMA model: bits_x `[n]` and eps
    `[n, D]`; a coupled pair also the joint log-density of the codes under each of its priors.
    A forward pass of n = 8 images per model, traced once per run (the batch is fixed): run
    eagerly, this and `variables` took 4.9 s of a tiny 30-step run's 12 saves
    (docs/testing.md), a cost every save paid again.
    """
    if self._outputs_finite is None:
      # Plain Python control flow: autograph would only transpile the whole model (5.7 s of a
      # tiny 20-step run's 19 s fit, paid again by every new process).
      self._outputs_finite = tf.function(self._flags, autograph=False)
    batch = self.fixed_batch()
    labels = self.steps.labels(batch)
    x = {
      side.key: losses_lib.preprocess(batch[side.image_key], self.n_bits_x, noise=False)
      for side in self.sides
    }
    flags = {k: bool(v) for k, v in self._outputs_finite(x, labels).items()}
    n = len(x[self.sides[0].key])
    for which, label in (("model", "training"), ("ema", "EMA")):
      for side in self.sides:
        bad = [k for k in ("bits_x", "eps") if not flags[f"{which}/{side.key}/{k}"]]
        if bad:
          self._refuse(f"model {side.key}", label, step, bad, n)
      if self.coupling and not flags[f"{which}/prior/log_prob"]:
        self._refuse("the coupled prior", label, step, ["log_prob"], n)

  def savable(self, step: int) -> None:
    """What every save checks first: finite variables, then finite outputs of them."""
    self.variables(step)
    self.outputs(step)

  def _flags(self, x, labels) -> dict[str, tf.Tensor]:
    """`outputs`' forward passes: {"model"|"ema"/A|B/bits_x|eps: all finite}, and
    {"model"|"ema"/prior/log_prob: ...} for a coupled pair."""
    flags = {}
    for which in ("model", "ema"):
      eps = {}
      for side in self.sides:
        model = side.model if which == "model" else side.ema
        terms = model.objective(x[side.key], labels)
        eps[side.key] = terms["eps"]
        for k in ("bits_x", "eps"):
          flags[f"{which}/{side.key}/{k}"] = tf.reduce_all(tf.math.is_finite(terms[k]))
      if self.coupling:
        prior = self.coupling.prior if which == "model" else self.coupling.ema
        log_prob = prior.log_prob(eps["A"], eps["B"])
        flags[f"{which}/prior/log_prob"] = tf.reduce_all(tf.math.is_finite(log_prob))
    return flags

  def _refuse(self, what: str, weights: str, step: int, bad: list[str], n: int) -> None:
    raise NonFiniteLossError(
      f"non-finite outputs of {what} at step {step} ({weights} weights: {', '.join(bad)} of "
      f"{n} fixed test images): not saved, training stopped, {self.last_good_checkpoint()}"
    )


@tf.function(autograph=False)
def all_finite(variables) -> tf.Tensor:
  """[len(variables)] bool: whether each variable is free of NaN and infinity (one traced call
  per list of variables instead of an eager reduction per variable)."""
  return tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in variables])
