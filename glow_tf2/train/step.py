"""The per-replica training and evaluation steps, run under `strategy.run`.

Per-example losses are averaged over the GLOBAL batch (`tf.nn.compute_average_loss`) and Keras's
optimizer sums the gradients across replicas, so every replica count gives the gradient of the
same mean. Dequantisation noise of an example depends only on the step and on its row in the
global batch (`streams.Stream.TRAIN_NOISE`), which makes a mirrored run reproduce a one-device
run with the same global batch.

One training step, for each side X with images x_X `[n, H, W, C]` (n = global batch / replicas):

  x_X = dequantize_with_noise(x_X)                          losses.py
        (variational: x_X, log q = dequantize_variational; bits_x is then the bound)
  terms_X = model_X.objective(x_X)    bits_x, eps `[n, D]`   model.py
  loss_X = side_losses(terms)          bits + code loss       losses.py
  g = d(sum_X mean loss_X) / d theta   one tape
  g += d(translation term) / d theta   a tape of its own, dropped if not finite (below)
  optimizer_X.apply_gradients; then, cross-replica: weight decay, EMA update, step += 1.

With `--precision=mixed_float16` the step is loss-scaled (`loss_scale.DynamicLossScale`, whose
docstring says why): both tapes differentiate S * loss, each replica unscales its gradients, and
in cross-replica context the replicas' overflows are summed; one `tf.cond` then applies every
optimizer, the weight decay and the EMA update, or (an inf or NaN anywhere) none of them, and S
is updated. `step += 1` either way: the step counter indexes the data and the noise, so a skipped
step's batch is spent, as in an uninterrupted run. The step's metrics add `loss_scale` (the S
it used) and `loss_scale_skipped` (1 for a skipped step).

A coupled pair (`--code_loss_type=coupled`) replaces the code loss: both sides' loss is the
pair's joint bits/dim under the coupled prior (`joint_losses.coupled_side_losses`), rho is
trained with them by an optimizer of its own, and the translation term decodes the conditional
mean codes rho * eps.
"""

import tensorflow as tf

from glow_tf2 import joint_losses
from glow_tf2 import losses as losses_lib
from glow_tf2.config import GlowConfig
from glow_tf2.config import TrainConfig
from glow_tf2.train import loss_scale as loss_scale_lib
from glow_tf2.train import optim
from glow_tf2.train import streams
from glow_tf2.train.sides import Coupling
from glow_tf2.train.sides import Side


class Steps:
  """The compiled step functions of a run's sides.

  Args:
    sides: the run's sides (made under `strategy.scope()`).
    config: the run.
    glow_config: the sides' architecture.
    strategy: the tf.distribute strategy.
    step: the global step variable (int64), incremented by every training step.
    batch_train: the global training batch.
    coupling: the pair's coupled prior (a coupled run), trained with the sides.
    loss_scale: the run's `loss_scale.DynamicLossScale` (float16), shared with the warm start's
      steps; None trains unscaled (float32, bfloat16).
  """

  def __init__(
    self,
    sides: list[Side],
    config: TrainConfig,
    glow_config: GlowConfig,
    strategy: tf.distribute.Strategy,
    step: tf.Variable,
    batch_train: int,
    coupling: Coupling | None = None,
    loss_scale: loss_scale_lib.DynamicLossScale | None = None,
  ):
    self.sides = sides
    self.loss_scale = loss_scale
    self.coupling = coupling
    self.config = config
    self.glow_config = glow_config
    self.strategy = strategy
    self.step = step
    self.batch_train = batch_train
    self.n_replicas = strategy.num_replicas_in_sync
    self.ycond = glow_config.n_classes > 0
    self.train_step = tf.function(
      self._distributed_scaled_step if loss_scale else self._distributed_train_step,
      autograph=False,
    )
    self.eval_step = tf.function(
      self._distributed_eval_step, reduce_retracing=True, autograph=False
    )
    # XLA compiles the per-replica forward and backward pass (not strategy.run itself).
    self._grads = (
      tf.function(self._losses_and_grads, jit_compile=True, autograph=False)
      if config.jit_compile
      else self._losses_and_grads
    )

  def labels(self, batch):
    return batch["label"] if self.ycond else None

  def noisy(self, images, stream: streams.Stream, side: int, counter, row_offset=0, rows=None):
    """The images dequantised with the noise of `stream` (see `losses.dequantize_with_noise`)."""
    seed = streams.seed(self.config.seed, stream, side, counter)
    return losses_lib.dequantize_with_noise(
      images, self.glow_config.n_bits_x, seed, row_offset, rows
    )

  def training_input(self, images, side: int, step, row_offset, rows):
    """x of a training batch: dequantised, plus sigma * N(0, I) for a noise-augmented model.

    The Gaussian noise (`streams.Stream.TRAIN_GAUSSIAN`) is drawn for the global batch and
    sliced, like the dequantisation noise, so any replica count trains on the same x.
    """
    x = self.noisy(images, streams.Stream.TRAIN_NOISE, side, step, row_offset, rows)
    return self._augmented(x, images, self._train_gaussian(side, step), row_offset, rows)

  def _train_gaussian(self, side: int, step) -> tf.Tensor:
    """The seed of a training batch's Gaussian noise (`streams.Stream.TRAIN_GAUSSIAN`)."""
    return streams.seed(self.config.seed, streams.Stream.TRAIN_GAUSSIAN, side, step)

  def _augmented(self, x, images, seed, row_offset, rows):
    """x + sigma * N(0, I) of a noise-augmented model (`training_input`), else x: the noise of
    the global batch's `rows` drawn from `seed`, and this replica's rows sliced out of it."""
    sigma = self.glow_config.noise_sigma
    if not sigma:
      return x
    shape = tf.shape(images)
    full = tf.random.stateless_normal(tf.concat([[rows], shape[1:]], 0), seed)
    return x + sigma * full[row_offset : row_offset + shape[0]]

  def variational_input(self, model, images, stream, side: int, counter, row_offset=0, rows=None):
    """(x, log q `[n]`): the images dequantised by `model`'s dequantizer, its eps drawn from
    `streams.variational` of the noise stream's seed, for the global batch and sliced."""
    seed = streams.variational(streams.seed(self.config.seed, stream, side, counter))
    return losses_lib.dequantize_variational(
      model.dequantizer, images, self.glow_config.n_bits_x, seed, row_offset, rows
    )

  def _training_terms(self, side: Side, i: int, images, labels, step, row_offset):
    """`objective` of side i's training input; a variational side's bits_x is its bound."""
    rows = self.batch_train
    if side.model.dequantizer is None:
      x = self.training_input(images, i, step, row_offset, rows)
      return side.model.objective(x, labels)
    train = streams.Stream.TRAIN_NOISE
    x, log_q = self.variational_input(side.model, images, train, i, step, row_offset, rows)
    x = self._augmented(x, images, self._train_gaussian(i, step), row_offset, rows)
    return side.model.objective(x, labels, log_q)

  # -----------------------------------------------------------------------------------------------
  # Training.

  def _losses_and_grads(self, batch, step, replica_id):
    per_replica = self.batch_train // self.n_replicas
    labels = self.labels(batch)
    variables = self._trainables()
    with tf.GradientTape() as tape:
      terms = {}
      for i, side in enumerate(self.sides):
        terms[side.key] = self._training_terms(
          side, i, batch[side.image_key], labels, step, replica_id * per_replica
        )
      # Each side's own terms; the shared translation term is differentiated apart (below).
      prior = self.coupling.prior if self.coupling else None
      losses, code, extra = self._side_losses(terms, prior)

      def mean(v):
        return tf.nn.compute_average_loss(v, global_batch_size=self.batch_train)

      total = losses_lib.total_loss({side.key: mean(losses[side.key]) for side in self.sides}, None)
      total = self._scaled(total)
    flat = [v for vs in variables for v in vs]
    grads, finite = self._unscaled(tape.gradient(total, flat))
    metrics = {}
    # The translation term takes the codes as constants, so it has a tape of its own. The rows
    # each decoder can decode are found first, untaped (`losses.decodable_rows`).
    models = [side.model for side in self.sides]
    keep = self._decodable(terms, labels, models, prior)
    with tf.GradientTape() as translation_tape:
      translation = self._translation(batch, terms, labels, models, prior, keep)
      if translation is not None:
        shared = self.config.loss.translation_loss_scale * translation
        shared_mean = mean(shared)
        scaled_shared = self._scaled(shared_mean)
    if translation is not None:
      # Decoding the other model's code can overflow early in training (an untrained decoder
      # amplifies directions no image uses). The term's backward pass is separate from the rest,
      # so a non-finite value or gradient drops this step's translation term alone; the rest of
      # the step stands. translation_dropped counts them. Summing the two gradients is the
      # gradient of total_loss(losses, shared): each model still gets exactly the gradient of
      # its own loss. Loss-scaled, the term's own overflow drops it alone too; the scale follows
      # the objective's gradients (translation_dropped shows a scale too large for the term).
      shared_grads = translation_tape.gradient(scaled_shared, flat, unconnected_gradients="zero")
      shared_grads, _ = self._unscaled([tf.convert_to_tensor(g) for g in shared_grads])
      kept_term = tf.reduce_all(
        [tf.math.is_finite(shared_mean)]
        + [tf.reduce_all(tf.math.is_finite(g)) for g in shared_grads]
      )
      grads = [
        tf.convert_to_tensor(g) + tf.where(kept_term, s, tf.zeros_like(s))
        for g, s in zip(grads, shared_grads)
      ]
      metrics["translation_dropped"] = (1.0 - tf.cast(kept_term, tf.float32)) / self.n_replicas
      kept = tf.cast(tf.logical_and(*keep), tf.float32)
      metrics["translation_kept"] = mean(kept)
      translation = tf.where(tf.math.is_finite(translation), translation, 0.0)
      for side in self.sides:
        losses[side.key] += tf.where(kept_term, shared, tf.zeros_like(shared))
    metrics.update(self._metrics(terms, losses, code, translation, mean, extra))
    return grads, metrics, finite

  def _scaled(self, loss):
    """S * loss in a loss-scaled run (inside the tape), else the loss itself (no op added)."""
    return self.loss_scale.scale_loss(loss) if self.loss_scale else loss

  def _unscaled(self, grads):
    """(grads / S, whether all are finite) in a loss-scaled run, else (grads, None)."""
    if not self.loss_scale:
      return grads, None
    return self.loss_scale.unscale(grads)

  def _trainables(self) -> list[list[tf.Variable]]:
    """The trainable variables of each side, then of the coupled prior (a coupled run)."""
    variables = [side.model.trainable_variables for side in self.sides]
    if self.coupling:
      variables.append(self.coupling.prior.trainable_variables)
    return variables

  def _optimizers(self) -> list:
    """The optimizer of each list of `_trainables`, in the same order."""
    optimizers = [side.optimizer for side in self.sides]
    return optimizers + ([self.coupling.optimizer] if self.coupling else [])

  def _side_losses(self, terms, prior, translation=None):
    """(losses, code, extra) of `losses.side_losses`, or of the coupled prior `prior` (a
    `CoupledPrior`: the trained one, or its EMA; None for a pair without one).

    extra holds the coupled pair's joint and conditional bits/dim (empty otherwise); code is
    the code_all distance, logged for comparison with the code-loss runs.
    """
    config = self.config.loss
    if prior is None:
      losses, code, _ = losses_lib.side_losses(terms, config, self.glow_config.top_dim, translation)
      return losses, code, {}
    losses, extra = joint_losses.coupled_side_losses(terms, config, prior)
    if translation is not None:
      for key in losses:
        losses[key] += config.translation_loss_scale * translation
    code = losses_lib.code_distance(
      terms["A"]["eps"],
      terms["B"]["eps"],
      self.glow_config.top_dim,
      "code_all",
      config.code_loss_fn,
    )
    return losses, code, extra

  def _metrics(self, terms, losses, code, translation, reduce, extra=None) -> dict:
    """The logged values, each reduced over the batch by `reduce` (a mean or a sum)."""
    out = {name: reduce(value) for name, value in (extra or {}).items()}
    for side in self.sides:
      k = side.lower
      out[f"loss_{k}"] = reduce(losses[side.key])
      # A variational side trains on its bound: named apart from the uniform bits/dim.
      bits = "bits_per_dim_vd" if terms[side.key].get("variational") else "bits_per_dim"
      out[f"{bits}_{k}"] = reduce(terms[side.key]["bits_x"])
      if side.model.class_head:
        out[f"bits_y_{k}"] = reduce(terms[side.key]["bits_y"])
        out[f"pred_loss_{k}"] = reduce(terms[side.key]["pred_loss"])
    if code is not None:
      out["code_loss"] = reduce(code)
    if translation is not None:
      out["translation_loss"] = reduce(translation)
    return out

  def _translates(self) -> bool:
    loss = self.config.loss
    return len(self.sides) == 2 and loss.joint_train and loss.translation_loss_scale > 0

  def _translation_codes(self, terms, prior):
    """The codes each side's image is translated from: eps, or under a coupled `prior` the
    conditional mean codes rho * eps (the prior's one conditional, as ImagePair's)."""
    eps_a, eps_b = terms["A"]["eps"], terms["B"]["eps"]
    if prior is None:
      return eps_a, eps_b
    return prior.conditional_sample(eps_a, 0.0), prior.conditional_sample(eps_b, 0.0)

  def _decodable(self, terms, labels, models, prior):
    """(A -> B, B -> A) bool `[n]`: the rows whose translation decodes finitely, or None when
    the loss has no translation term."""
    if not self._translates():
      return None
    a, b = models
    eps_a, eps_b = self._translation_codes(terms, prior)
    return (
      losses_lib.decodable_rows(b.glow, eps_a, labels),
      losses_lib.decodable_rows(a.glow, eps_b, labels),
    )

  def _translation(self, batch, terms, labels, models, prior, keep=None):
    """`losses.translation_distance` of `models` (each side's `FlowModel`: the trained ones or
    their EMAs), when the loss has it; `keep` leaves out rows that do not decode (training).

    A coupled pair translates the conditional mean codes rho * eps of `prior` (None: rho = 1).
    """
    if not self._translates():
      return None
    loss = self.config.loss
    a, b = models
    eps_a, eps_b = self._translation_codes(terms, prior)
    targets = [
      losses_lib.preprocess(batch[side.image_key], self.glow_config.n_bits_x, noise=False)
      for side in self.sides
    ]
    return losses_lib.translation_distance(
      a.glow,
      b.glow,
      eps_a,
      eps_b,
      *targets,
      loss.code_loss_fn,
      labels=labels,
      keep=keep,
    )

  def gradients(self, batch):
    """(grads, metrics, finite) of this replica's part of the global batch (replica context).

    grads: the gradient of every variable of `_trainables()`, flattened in that order, unscaled
    in a loss-scaled run; finite: whether all of them are finite (None when not loss-scaled).
    What the optimizers apply, and what the tests compare across precisions.
    """
    context = tf.distribute.get_replica_context()
    replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
    return self._grads(batch, self.step.read_value(), replica_id)

  def _apply_gradients(self, grads):
    """Each optimizer's update from its variables' part of `grads` (replica context: Keras's
    optimizer sums the replicas' gradients)."""
    start = 0
    for optimizer, variables in zip(self._optimizers(), self._trainables()):
      optimizer.apply_gradients(zip(grads[start : start + len(variables)], variables))
      start += len(variables)

  def _replica_step(self, batch):
    grads, metrics, _ = self.gradients(batch)
    self._apply_gradients(grads)
    return metrics

  def _after_update(self):
    """Cross-replica context, after the optimizers: weight decay and the EMA updates. These
    assignments write every replica's copy with one value."""
    for side in self.sides:
      optim.decay_weights(side.model.trainable_variables, self.config.optim.weight_decay)
      side.polyak.update()
    if self.coupling:
      self.coupling.polyak.update()

  def _reduce(self, per_replica: dict) -> dict:
    return {
      k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
      for k, v in per_replica.items()
    }

  def _distributed_train_step(self, iterator):
    metrics = self._reduce(self.strategy.run(self._replica_step, args=(next(iterator),)))
    self._after_update()
    self.step.assign_add(1)
    return metrics

  def _distributed_scaled_step(self, iterator):
    """The loss-scaled step (module docstring): all updates or none, then S's update.

    The gradients come back to cross-replica context and go out again to the optimizers under
    the `tf.cond`: a cond inside replica context cannot hold Keras's cross-replica sum (a
    `merge_call`). The overflow is summed over the replicas, so every replica and worker takes
    the same branch.
    """

    def replica(batch):
      grads, metrics, finite = self.gradients(batch)
      return grads, metrics, 1 - tf.cast(finite, tf.int32)

    grads, per_replica, overflows = self.strategy.run(replica, args=(next(iterator),))
    metrics = self._reduce(per_replica)
    overflowed = self.strategy.reduce(tf.distribute.ReduceOp.SUM, overflows, axis=None) > 0
    metrics["loss_scale"] = self.loss_scale.scale.read_value()
    metrics["loss_scale_skipped"] = tf.cast(overflowed, tf.float32)

    def update():
      self.strategy.run(self._apply_gradients, args=(grads,))
      self._after_update()
      return tf.constant(True)

    tf.cond(overflowed, lambda: tf.constant(False), update)
    self.loss_scale.update(tf.logical_not(overflowed))
    self.step.assign_add(1)
    return metrics

  # -----------------------------------------------------------------------------------------------
  # Validation (EMA models): sums over the batch, divided by the count by the caller.

  def _replica_eval(self, batch, batch_index):
    """Masked sums of one replica's rows of a padded global test batch (`evaluator.pad_batch`)."""
    context = tf.distribute.get_replica_context()
    mask = batch["mask"]
    per_replica = tf.shape(mask)[0]
    # The noise of a test image is a function of (batch index, global row): as in training,
    # each replica slices its rows out of the global batch's noise, so the replica count does
    # not change the metrics.
    row_offset = tf.cast(context.replica_id_in_sync_group, tf.int32) * per_replica
    global_rows = per_replica * self.n_replicas
    labels = self.labels(batch)
    terms = {}
    bounds = {}
    for i, side in enumerate(self.sides):
      images = batch[side.image_key]
      x = self.noisy(images, streams.Stream.EVAL_NOISE, i, batch_index, row_offset, global_rows)
      terms[side.key] = side.ema.objective(x, labels)
      if self.glow_config.noise_sigma:
        # A noise-augmented model is a density of x + sigma n: its own bits/dim, beside the
        # clean test images' (which it blurs, so they cost more than a model of them would).
        seed = streams.gaussian(
          streams.seed(self.config.seed, streams.Stream.EVAL_NOISE, i, batch_index)
        )
        noised = self._augmented(x, images, seed, row_offset, global_rows)
        bounds[f"bits_per_dim_noised_{side.lower}"] = side.ema.objective(noised, labels)["bits_x"]
      if side.ema.dequantizer is not None:
        # The variational bound beside the uniform bits/dim: a second pass through the Glow.
        x, log_q = self.variational_input(
          side.ema, images, streams.Stream.EVAL_NOISE, i, batch_index, row_offset, global_rows
        )
        bounds[f"bits_per_dim_vd_{side.lower}"] = side.ema.objective(x, labels, log_q)["bits_x"]
    prior = self.coupling.ema if self.coupling else None
    translation = self._translation(batch, terms, labels, [side.ema for side in self.sides], prior)
    losses, code, extra = self._side_losses(terms, prior, translation)

    def masked_sum(v):
      return tf.reduce_sum(tf.cast(v, tf.float32) * mask)

    sums = {"count": tf.reduce_sum(mask)}
    sums.update(self._metrics(terms, losses, code, translation, masked_sum, {**extra, **bounds}))
    return sums

  def _distributed_eval_step(self, batch, batch_index):
    sums = self.strategy.run(self._replica_eval, args=(batch, batch_index))
    return {
      k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in sums.items()
    }
