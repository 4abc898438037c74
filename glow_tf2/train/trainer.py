"""Joint training of pix2pix-flow's two Glow models (or one, as plain Glow) under tf.distribute.

A `Trainer` holds one `Side` per image domain (A, and B for paired problems): two instances of
one class, never two copies of code. Each side has its model, an EMA copy of it (the model that
validation, samples, inference and export use), a Keras optimizer and a best-test-loss record.

The training step is a `tf.function` that runs `_replica_step` through `strategy.run`. Per-example
losses are averaged over the GLOBAL batch (`tf.nn.compute_average_loss`) and Keras's optimizer
sums the gradients across replicas, so every replica count gives the gradient of the same mean.
Dequantisation noise of an example depends only on the step and on its row in the global batch,
which makes a mirrored run reproduce a one-device run with the same global batch.

Order of things in a run (and on resume):
1. If `<logdir>/checkpoints` has a checkpoint, restore everything from it: step, both models, EMA
   copies, optimizer slots and iteration counts (hence the lr schedule), best test losses.
2. Else run the data-dependent ActNorm init once, eagerly, in cross-replica context, on
   `n_batch_init` images (the same on every replica and worker), copy the weights to the EMA
   models, then restore `--restore_path_A` / `--restore_path_B` into that side only.
3. Train; at the end of every epoch write the JSON-lines logs, validate every
   `epochs_full_valid` epochs (saving a side's best model when its test loss improves), draw
   sample and translation grids every `epochs_full_sample` epochs, then save a checkpoint. The
   last step of the run (from --epochs or --train_steps) always validates, samples and saves.

Checkpoints are written by `tf.train.CheckpointManager` (data files first, then the `checkpoint`
index file atomically), so a run killed at any moment, even with SIGKILL, resumes from the last
complete checkpoint. A non-finite loss raises `NonFiniteLossError` naming the step before
anything is saved.
"""

import json
import math
import os
import shutil
import sys
import time
from typing import Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from glow_tf2 import image_grid
from glow_tf2 import losses as losses_lib
from glow_tf2.config import GlowConfig
from glow_tf2.flows.glow import Glow
from glow_tf2.train import distribute
from glow_tf2.train import model as model_lib
from glow_tf2.train import optim
from glow_tf2.train_config import TEMPERATURES
from glow_tf2.train_config import TrainConfig

N_TRANSLATE = 8  # fixed test pairs shown in the translation grids


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


class Side:
  """One image domain: model, EMA model, optimizer and best-test-loss record.

  Args:
    key: "A" or "B".
    glow_config: the architecture.
    config: the run's configuration.
    seed: seeds the initial weights; model and EMA model get the same ones.
    learning_rate: a Keras learning-rate schedule.
    beta2: second-moment decay of the optimizer and decay of the EMA.
  Create it under `strategy.scope()`.
  """

  def __init__(
    self,
    key: str,
    glow_config: GlowConfig,
    config: TrainConfig,
    seed: int,
    learning_rate,
    beta2: float,
  ):
    self.key = key
    self.lower = key.lower()
    self.image_key = f"image_{self.lower}"
    class_head = config.loss.weight_y > 0
    glow = Glow(
      glow_config,
      seed=seed,
      gradient_checkpointing=config.model.gradient_checkpointing,
      branches=config.branches,
      name=f"glow_{self.lower}",
    )
    self.model = model_lib.FlowModel(glow, class_head=class_head, name=f"model_{self.lower}")
    ema_glow = Glow(glow_config, seed=seed, branches=config.branches, name=f"glow_{self.lower}_ema")
    self.ema = model_lib.FlowModel(ema_glow, class_head=class_head, name=f"ema_{self.lower}")
    self.optimizer = optim.make_optimizer(
      config.optim.optimizer,
      learning_rate,
      config.optim.beta1,
      beta2,
      label=f"optimizer_{self.lower}",
    )
    self.optimizer.build(self.model.trainable_variables)
    self.polyak = optim.PolyakAverage(self.model, self.ema, beta2)
    self.best_loss = tf.Variable(math.inf, trainable=False, name=f"best_loss_{self.lower}")
    # What a per-model file (best checkpoint, --restore_path_X) holds: this side only.
    self.checkpoint = tf.train.Checkpoint(model=self.model, ema=self.ema)
    # Create its save counter now. Made lazily at the first best-model save, it would be restored
    # then from the training checkpoint the run resumed from, which may be rotated away by then.
    _ = self.checkpoint.save_counter
    self.encode = tf.function(self._encode, reduce_retracing=True, autograph=False)
    self.decode = tf.function(self._decode, reduce_retracing=True, autograph=False)

  def _encode(self, images, labels=None):
    """EMA model: uint8 images -> eps `[N, D]`, at the centre of each quantisation bin."""
    x = losses_lib.preprocess(images, self.ema.config.n_bits_x, noise=False)
    return self.ema.glow.encode(x, labels=labels)[0]

  def _decode(self, eps, labels=None):
    """EMA model: eps `[N, D]` -> uint8 images."""
    return losses_lib.postprocess(
      self.ema.glow.decode(eps, labels=labels)[0], self.ema.config.n_bits_x
    )


class JsonLog:
  """The original's JSON-lines log: first line the hyperparameters, then one line per epoch.

  On resume, lines of epochs after the restored one (written before a kill, then redone) and a
  torn last line are dropped, so every epoch appears once.
  """

  def __init__(self, path: str, hyperparameters: dict, resume_epoch: int):
    self.path = path
    lines = []
    if os.path.exists(path):
      with open(path) as f:
        for line in f:
          if not line.endswith("\n"):
            break  # torn by a kill
          try:
            record = json.loads(line)
          except json.JSONDecodeError:
            break
          if "epoch" in record and record["epoch"] > resume_epoch:
            continue
          lines.append(line)
    if not lines:
      lines = [json.dumps(hyperparameters, sort_keys=True, default=str) + "\n"]
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
      f.writelines(lines)
    os.replace(tmp, path)

  def write(self, record: dict) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")
      f.flush()
      os.fsync(f.fileno())


class _Mean:
  """Running means of a dict of floats."""

  def __init__(self):
    self.sums: dict[str, float] = {}
    self.count = 0

  def add(self, values: dict[str, float]) -> None:
    for k, v in values.items():
      self.sums[k] = self.sums.get(k, 0.0) + v
    self.count += 1

  def result(self) -> dict[str, float]:
    return {k: v / max(self.count, 1) for k, v in self.sums.items()}


class Trainer:
  """Builds the sides under `strategy` and runs training, validation and inference.

  Args:
    config: the run.
    problem: a `glow_tf2.problems.Problem` (`image_shape`, `paired`, `n_classes`, ...).
    strategy: a tf.distribute strategy (see `glow_tf2.distribute.make_strategy`).
    make_dataset: `input_pipeline.make_dataset` or a stand-in with its signature.
  """

  def __init__(self, config: TrainConfig, problem, strategy: tf.distribute.Strategy, make_dataset):
    self.config = config
    self.problem = problem
    self.strategy = strategy
    self._make_dataset = make_dataset
    self.glow_config = config.check_problem(problem)
    image_size = self.glow_config.image_shape[0]
    self.n_replicas = strategy.num_replicas_in_sync
    config.check_replicas(self.n_replicas, image_size)
    self.batch_train, self.batch_test, self.batch_init = config.global_batches(image_size)
    self.steps_per_epoch = config.steps_per_epoch(image_size)
    self.max_steps = config.epochs * self.steps_per_epoch
    if config.train_steps:
      self.max_steps = min(self.max_steps, config.train_steps)
    self.is_chief, _, task_id = distribute.worker_identity(strategy)
    self.ycond = self.glow_config.n_classes > 0

    beta2 = config.optim.beta2(self.steps_per_epoch)
    self.learning_rate = optim.LinearWarmup(
      config.optim.lr, config.optim.epochs_warmup * self.steps_per_epoch
    )
    keys = ["A", "B"] if problem.paired else ["A"]
    with strategy.scope():
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
      self.sides: list[Side] = [
        Side(k, self.glow_config, config, config.seed * 2 + i + 1, self.learning_rate, beta2)
        for i, k in enumerate(keys)
      ]

    parts = {"step": self.step}
    for side in self.sides:
      parts[f"model_{side.lower}"] = side.checkpoint
      parts[f"optimizer_{side.lower}"] = side.optimizer
      parts[f"best_loss_{side.lower}"] = side.best_loss
    self.checkpoint = tf.train.Checkpoint(**parts)
    self.logdir = config.logdir
    # Every worker must save (MultiWorkerMirroredStrategy); only the chief's files are kept.
    write_root = self.logdir if self.is_chief else os.path.join(self.logdir, f".worker_{task_id}")
    self._scratch = None if self.is_chief else write_root
    self.checkpoint_dir = os.path.join(self.logdir, "checkpoints")
    self.manager = tf.train.CheckpointManager(
      self.checkpoint, os.path.join(write_root, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    self.best_managers = {
      side.key: tf.train.CheckpointManager(
        side.checkpoint,
        os.path.join(write_root, f"best_{side.key}"),
        max_to_keep=1,
        checkpoint_name=f"model_{side.key}_best_loss",
      )
      for side in self.sides
    }

    self._train_step = tf.function(self._distributed_train_step, autograph=False)
    self._eval_step = tf.function(
      self._distributed_eval_step, reduce_retracing=True, autograph=False
    )
    # XLA compiles the per-replica forward and backward pass (not strategy.run itself).
    self._grads = (
      tf.function(self._losses_and_grads, jit_compile=True, autograph=False)
      if config.jit_compile
      else self._losses_and_grads
    )
    self._translation_pairs = None

  # -----------------------------------------------------------------------------------------------
  # Data.

  def dataset(
    self,
    split: str,
    batch_size: int,
    *,
    shuffle: bool,
    repeat: bool,
    dal: int = 0,
    seed: int = 0,
    input_context=None,
  ) -> tf.data.Dataset:
    ds = self._make_dataset(
      self.problem,
      split,
      batch_size,
      shuffle=shuffle,
      repeat=repeat,
      dal=dal,
      seed=seed,
      input_context=input_context,
    )
    if self.config.data.flip_color:
      ds = ds.map(lambda b: {**b, "image_b": 255 - b["image_b"]})
    return ds

  def _test_dataset(self, batch_size: int, input_context=None) -> tf.data.Dataset:
    ds = self.dataset("test", batch_size, shuffle=False, repeat=False, input_context=input_context)
    n_test = self.config.data.n_test
    if n_test > 0:
      pipelines = input_context.num_input_pipelines if input_context else 1
      ds = ds.take(math.ceil(n_test / pipelines / batch_size))
    return ds

  def _labels(self, batch):
    return batch["label"] if self.ycond else None

  # -----------------------------------------------------------------------------------------------
  # The training step.

  def _noise(self, images, stream: int, counter, row_offset, global_rows: int):
    """U(0, 1) noise for rows [row_offset, row_offset + n) of a global batch of global_rows."""
    shape = tf.shape(images)
    seed = tf.stack(
      [tf.constant(self.config.seed * 64 + stream, tf.int64), tf.cast(counter, tf.int64)]
    )
    full = tf.random.stateless_uniform(tf.concat([[global_rows], shape[1:]], 0), seed)
    return full[row_offset : row_offset + shape[0]]

  def _losses_and_grads(self, batch, step, replica_id):
    per_replica = self.batch_train // self.n_replicas
    labels = self._labels(batch)
    variables = [side.model.trainable_variables for side in self.sides]
    with tf.GradientTape() as tape:
      terms = {}
      for i, side in enumerate(self.sides):
        images = batch[side.image_key]
        noise = self._noise(images, i, step, replica_id * per_replica, self.batch_train)
        x = losses_lib.dequantize(images, self.glow_config.n_bits_x, noise)
        terms[side.key] = side.model.objective(x, labels)
      # Each side's own terms; the shared translation term is differentiated apart (below).
      losses, code, _ = losses_lib.side_losses(terms, self.config.loss, self.glow_config.top_dim)

      def mean(v):
        return tf.nn.compute_average_loss(v, global_batch_size=self.batch_train)

      total = losses_lib.total_loss({side.key: mean(losses[side.key]) for side in self.sides}, None)
    flat = [v for vs in variables for v in vs]
    grads = tape.gradient(total, flat)
    metrics = {}
    # The translation term takes the codes as constants, so it has a tape of its own.
    with tf.GradientTape() as translation_tape:
      translation = self._translation(batch, terms, labels, "model")
      if translation is not None:
        shared = self.config.loss.translation_loss_scale * translation
        shared_mean = mean(shared)
    if translation is not None:
      # Decoding the other model's code can overflow early in training (an untrained decoder
      # amplifies directions no image uses). The term's backward pass is separate from the rest,
      # so a non-finite value or gradient drops this step's translation term alone; the rest of
      # the step stands. translation_dropped counts them. Summing the two gradients is the
      # gradient of total_loss(losses, shared): each model still gets exactly the gradient of
      # its own loss.
      shared_grads = translation_tape.gradient(shared_mean, flat, unconnected_gradients="zero")
      shared_grads = [tf.convert_to_tensor(g) for g in shared_grads]
      finite = tf.reduce_all(
        [tf.math.is_finite(shared_mean)]
        + [tf.reduce_all(tf.math.is_finite(g)) for g in shared_grads]
      )
      grads = [
        tf.convert_to_tensor(g) + tf.where(finite, s, tf.zeros_like(s))
        for g, s in zip(grads, shared_grads)
      ]
      metrics["translation_dropped"] = (1.0 - tf.cast(finite, tf.float32)) / self.n_replicas
      translation = tf.where(tf.math.is_finite(translation), translation, 0.0)
      for side in self.sides:
        losses[side.key] += tf.where(finite, shared, tf.zeros_like(shared))
    for side in self.sides:
      k = side.lower
      metrics[f"loss_{k}"] = mean(losses[side.key])
      metrics[f"bits_per_dim_{k}"] = mean(terms[side.key]["bits_x"])
      if side.model.class_head:
        metrics[f"bits_y_{k}"] = mean(terms[side.key]["bits_y"])
        metrics[f"pred_loss_{k}"] = mean(terms[side.key]["pred_loss"])
    if code is not None:
      metrics["code_loss"] = mean(code)
    if translation is not None:
      metrics["translation_loss"] = mean(translation)
    return grads, metrics

  def _translation(self, batch, terms, labels, which: str):
    """`losses_lib.translation_distance` of the "model" or "ema" weights, when the loss has it."""
    loss = self.config.loss
    if len(self.sides) < 2 or not (loss.joint_train and loss.translation_loss_scale > 0):
      return None
    a, b = (getattr(side, which) for side in self.sides)
    targets = [
      losses_lib.preprocess(batch[side.image_key], self.glow_config.n_bits_x, noise=False)
      for side in self.sides
    ]
    return losses_lib.translation_distance(
      a.glow,
      b.glow,
      terms["A"]["eps"],
      terms["B"]["eps"],
      *targets,
      self.config.loss.code_loss_fn,
      labels=labels,
    )

  def _replica_step(self, batch):
    context = tf.distribute.get_replica_context()
    replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
    grads, metrics = self._grads(batch, self.step.read_value(), replica_id)
    start = 0
    for side in self.sides:
      variables = side.model.trainable_variables
      side.optimizer.apply_gradients(zip(grads[start : start + len(variables)], variables))
      start += len(variables)
    return metrics

  def _distributed_train_step(self, iterator):
    per_replica = self.strategy.run(self._replica_step, args=(next(iterator),))
    metrics = {
      k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
      for k, v in per_replica.items()
    }
    # Cross-replica context: these assignments write every replica's copy with one value.
    for side in self.sides:
      optim.decay_weights(side.model.trainable_variables, self.config.optim.weight_decay)
      side.polyak.update()
    self.step.assign_add(1)
    return metrics

  # -----------------------------------------------------------------------------------------------
  # Validation (EMA models).

  def _replica_eval(self, batch, batch_index):
    context = tf.distribute.get_replica_context()
    replica_id = tf.cast(context.replica_id_in_sync_group, tf.int64)
    labels = self._labels(batch)
    terms = {}
    n = None
    for i, side in enumerate(self.sides):
      images = batch[side.image_key]
      n = tf.shape(images)[0]
      noise = self._noise(images, 16 + i, batch_index * 4096 + replica_id, 0, n)
      x = losses_lib.dequantize(images, self.glow_config.n_bits_x, noise)
      terms[side.key] = side.ema.objective(x, labels)
    translation = self._translation(batch, terms, labels, "ema")
    losses, code, _ = losses_lib.side_losses(
      terms, self.config.loss, self.glow_config.top_dim, translation
    )
    sums = {"count": tf.cast(n, tf.float32)}
    for side in self.sides:
      k = side.lower
      sums[f"loss_{k}"] = tf.reduce_sum(losses[side.key])
      sums[f"bits_per_dim_{k}"] = tf.reduce_sum(terms[side.key]["bits_x"])
      if side.model.class_head:
        sums[f"bits_y_{k}"] = tf.reduce_sum(terms[side.key]["bits_y"])
        sums[f"pred_loss_{k}"] = tf.reduce_sum(terms[side.key]["pred_loss"])
    if code is not None:
      sums["code_loss"] = tf.reduce_sum(code)
    if translation is not None:
      sums["translation_loss"] = tf.reduce_sum(translation)
    return sums

  def _distributed_eval_step(self, batch, batch_index):
    sums = self.strategy.run(self._replica_eval, args=(batch, batch_index))
    return {
      k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in sums.items()
    }

  def evaluate(self) -> dict[str, float]:
    """Means over the test set (EMA models): loss_x, bits_per_dim_x, code_loss, ..."""
    per_replica = self.batch_test // self.n_replicas
    ds = self.strategy.distribute_datasets_from_function(
      lambda ctx: self._test_dataset(per_replica, ctx)
    )
    totals: dict[str, float] = {}
    for i, batch in enumerate(ds):
      for k, v in self._eval_step(batch, tf.constant(i, tf.int64)).items():
        totals[k] = totals.get(k, 0.0) + float(v)
    count = totals.pop("count", 0.0)
    if not count:
      raise ValueError(f"problem {self.problem.name!r}: the test split gave no images")
    return {k: v / count for k, v in totals.items()}

  # -----------------------------------------------------------------------------------------------
  # Start: resume, or initialise and restore single models.

  def restore_or_initialize(self) -> int:
    """Returns the step to continue from (0 for a fresh run)."""
    latest = tf.train.latest_checkpoint(self.checkpoint_dir)
    if latest:
      self.checkpoint.restore(latest).assert_existing_objects_matched()
      logging.info("resumed from %s at step %d", latest, int(self.step.read_value()))
      if self.config.restore_path_a or self.config.restore_path_b:
        logging.warning("--restore_path_A/B ignored: resuming the run in %s", self.logdir)
      return int(self.step.read_value())
    self.initialize()
    for side, path in zip(self.sides, (self.config.restore_path_a, self.config.restore_path_b)):
      if path:
        self.restore_side(side, path)
    return 0

  def initialize(self) -> None:
    """Data-dependent init of both models on the same n_batch_init images, cross-replica."""
    ds = self.dataset(
      "train", self.batch_init, shuffle=True, repeat=True, dal=0, seed=self.config.seed
    )
    batch = next(iter(ds))
    labels = self._labels(batch)
    with self.strategy.scope():
      for i, side in enumerate(self.sides):
        images = batch[side.image_key]
        noise = self._noise(images, 32 + i, 0, 0, int(images.shape[0]))
        x = losses_lib.dequantize(images, self.glow_config.n_bits_x, noise)
        side.model.glow.initialize(x, labels)
        side.polyak.reset()
    logging.info("data-dependent init on %d images", int(batch["image_a"].shape[0]))

  def restore_side(self, side: Side, path: str) -> str:
    """Restores one side's model and EMA model from a per-model file or a training checkpoint."""
    prefix = tf.train.latest_checkpoint(path) if os.path.isdir(path) else path
    if not prefix:
      raise FileNotFoundError(f"--restore_path_{side.key}={path}: no checkpoint there")
    try:
      names = [name for name, _ in tf.train.list_variables(prefix)]
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
      raise FileNotFoundError(
        f"--restore_path_{side.key}={path}: not a readable checkpoint ({e})"
      ) from e
    if any(n.startswith("model/") for n in names):
      root = tf.train.Checkpoint(model=side.model, ema=side.ema)
    else:
      own = f"model_{side.lower}/"
      if not any(n.startswith(own) for n in names):
        raise ValueError(
          f"--restore_path_{side.key}={path}: holds neither a single model nor "
          f"model {side.key} of a training checkpoint"
        )
      root = tf.train.Checkpoint(**{f"model_{side.lower}": side.checkpoint})
    with self.strategy.scope():
      root.restore(prefix).expect_partial().assert_existing_objects_matched()
    logging.info("model %s restored from %s", side.key, prefix)
    return prefix

  # -----------------------------------------------------------------------------------------------
  # Training loop.

  def train_iterator(self, start: int = 0):
    """Distributed iterator over per-replica training batches.

    A resumed run reshuffles with a new seed (the data order is not part of the checkpoint).
    """
    per_replica = self.batch_train // self.n_replicas
    config = self.config
    ds = self.strategy.distribute_datasets_from_function(
      lambda ctx: self.dataset(
        "train",
        per_replica,
        shuffle=True,
        repeat=True,
        dal=config.data.dal,
        seed=config.seed + start,
        input_context=ctx,
      )
    )
    return iter(ds)

  def train_step(self, iterator) -> dict[str, float]:
    """One optimisation step of every side on the next global batch; returns its metrics."""
    return {k: float(v) for k, v in self._train_step(iterator).items()}

  def fit(self) -> dict[str, float]:
    """Trains until --epochs or --train_steps; returns the last epoch's train metrics."""
    config = self.config
    start = self.restore_or_initialize()
    spe = self.steps_per_epoch
    outputs = _Outputs(self, resume_epoch=start // spe) if self.is_chief else None
    if outputs:
      outputs.write_hparams()
    if start >= self.max_steps:
      logging.info("nothing to do: step %d >= %d", start, self.max_steps)
      return {}
    iterator = self.train_iterator(start)
    progress = _Progress(self, start)
    epoch_mean, window_mean = _Mean(), _Mean()
    epoch_start = window_start = time.time()
    step, last = start, {}
    while step < self.max_steps:
      metrics = self._train_step(iterator)
      step += 1
      values = {k: float(v) for k, v in metrics.items()}
      bad = {k: v for k, v in values.items() if not math.isfinite(v)}
      if bad:
        raise NonFiniteLossError(
          f"non-finite loss at step {step} (epoch {math.ceil(step / spe)}): {bad}; training "
          f"stopped, the last good checkpoint is "
          f"{tf.train.latest_checkpoint(self.checkpoint_dir)}"
        )
      epoch_mean.add(values)
      window_mean.add(values)
      progress.update(step, values)
      end_of_epoch = step % spe == 0 or step == self.max_steps
      if step % config.log_steps == 0 or end_of_epoch:
        now = time.time()
        rate = window_mean.count * self.batch_train / max(now - window_start, 1e-9)
        if outputs:
          outputs.train_scalars(
            step, window_mean.result(), float(self.learning_rate(step - 1)), rate
          )
        window_mean, window_start = _Mean(), now
      if end_of_epoch:
        epoch = math.ceil(step / spe)
        last = epoch_mean.result()
        final = step == self.max_steps
        if outputs:
          outputs.train_logs(
            epoch, step, epoch_mean.count * self.batch_train, time.time() - epoch_start, last
          )
        if epoch % config.epochs_full_valid == 0 or final:
          self.validate(epoch, step, outputs)
        if outputs and (epoch % config.epochs_full_sample == 0 or final):
          outputs.samples(epoch, step)
        self.save()
        # Validation, images and checkpoints do not count against the training rate.
        epoch_mean, epoch_start = _Mean(), time.time()
        window_start = epoch_start
    progress.close()
    return last

  def validate(self, epoch: int, step: int, outputs: Optional["_Outputs"]) -> dict[str, float]:
    results = self.evaluate()
    for side in self.sides:
      loss = results[f"loss_{side.lower}"]
      if loss < float(side.best_loss.read_value()):
        side.best_loss.assign(loss)
        self.best_managers[side.key].save(checkpoint_number=step)
        self._drop_scratch()
    if outputs:
      outputs.eval_logs(epoch, step, results)
    logging.info(
      "epoch %d step %d eval: %s",
      epoch,
      step,
      ", ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())),
    )
    return results

  def save(self) -> None:
    self.manager.save(checkpoint_number=int(self.step.read_value()))
    self._drop_scratch()

  def _drop_scratch(self) -> None:
    if self._scratch:
      shutil.rmtree(self._scratch, ignore_errors=True)

  # -----------------------------------------------------------------------------------------------
  # Images.

  def sample_grids(self, n: int) -> dict[str, list[np.ndarray]]:
    """{side key: one uint8 `[n, H, W, C]` batch per temperature} from the EMA models.

    The latent noise is the same at every call, so grids of successive epochs compare.
    """
    d = self.glow_config.data_dim
    labels = tf.range(n) % self.glow_config.n_classes if self.ycond else None
    out = {}
    for i, side in enumerate(self.sides):
      base = tf.random.stateless_normal([n, d], seed=[self.config.seed, 7000 + i])
      out[side.key] = [side.decode(t * base, labels).numpy() for t in TEMPERATURES]
    return out

  def translation_pairs(self):
    """A fixed batch of test pairs (first N_TRANSLATE of the test split)."""
    if self._translation_pairs is None:
      ds = self.dataset("test", N_TRANSLATE, shuffle=False, repeat=False)
      self._translation_pairs = next(iter(ds))
    return self._translation_pairs

  def translate(self, images, source: Side, target: Side, labels=None) -> np.ndarray:
    """decode_target(encode_source(images)) with the EMA models: uint8 -> uint8."""
    return target.decode(source.encode(images, labels), labels).numpy()

  def translation_grids(self) -> dict[str, np.ndarray]:
    """{"A2B": grid, "B2A": grid}; rows: source, translation, ground truth."""
    if len(self.sides) < 2:
      return {}
    batch = self.translation_pairs()
    labels = self._labels(batch)
    a, b = self.sides
    xa, xb = batch["image_a"].numpy(), batch["image_b"].numpy()
    return {
      "A2B": image_grid.make_rows_grid([xa, self.translate(xa, a, b, labels), xb]),
      "B2A": image_grid.make_rows_grid([xb, self.translate(xb, b, a, labels), xa]),
    }

  # -----------------------------------------------------------------------------------------------
  # Inference.

  def load_for_inference(self) -> None:
    """Each side from --restore_path_X, else its best checkpoint, else the last training one."""
    paths = {"A": self.config.restore_path_a, "B": self.config.restore_path_b}
    for side in self.sides:
      path = paths[side.key]
      if not path:
        best_dir = os.path.join(self.logdir, f"best_{side.key}")
        path = best_dir if tf.train.latest_checkpoint(best_dir) else self.checkpoint_dir
        if not tf.train.latest_checkpoint(path):
          raise FileNotFoundError(
            f"--inference: no checkpoint of model {side.key} in {self.logdir} (best_{side.key}/ "
            f"or checkpoints/); train first or pass --restore_path_{side.key}"
          )
      self.restore_side(side, path)

  def infer(self) -> dict[str, str]:
    """Writes z_A.npy, z_B.npy (codes of the test set, EMA weights), A2B.png, B2A.png."""
    self.load_for_inference()
    os.makedirs(self.logdir, exist_ok=True)
    codes = {side.key: [] for side in self.sides}
    for batch in self._test_dataset(self.batch_test):
      labels = self._labels(batch)
      for side in self.sides:
        codes[side.key].append(side.encode(batch[side.image_key], labels).numpy())
    written = {}
    for side in self.sides:
      path = os.path.join(self.logdir, f"z_{side.key}.npy")
      _save_npy(path, np.concatenate(codes[side.key], axis=0))
      written[f"z_{side.key}"] = path
    for name, grid in self.translation_grids().items():
      path = os.path.join(self.logdir, f"{name}.png")
      image_grid.save_png(path, grid)
      written[name] = path
    return written


def _save_npy(path: str, array: np.ndarray) -> None:
  tmp = f"{path}.tmp{os.getpid()}.npy"
  np.save(tmp, array)
  os.replace(tmp, path)


class _Progress:
  """Keras's progress bar on a terminal; a plain log line every --log_steps steps otherwise."""

  def __init__(self, trainer: Trainer, start: int):
    self.trainer = trainer
    self.start, self.t0 = start, time.time()
    self.interactive = trainer.is_chief and sys.stdout.isatty()
    self.bar = None

  def update(self, step: int, values: dict[str, float]) -> None:
    t = self.trainer
    spe = t.steps_per_epoch
    in_epoch = (step - 1) % spe + 1
    if self.interactive:
      if self.bar is None or in_epoch == 1:
        print(f"epoch {math.ceil(step / spe)}")
        self.bar = keras.utils.Progbar(min(spe, t.max_steps - (step - in_epoch)), unit_name="step")
      self.bar.update(in_epoch, values=sorted(values.items()))
      return
    if t.is_chief and (step % t.config.log_steps == 0 or step == t.max_steps):
      elapsed = time.time() - self.t0
      per_step = elapsed / max(step - self.start, 1)
      eta = per_step * (t.max_steps - step)
      logging.info(
        "step %d/%d epoch %d: %.1f images/s, ETA %s; %s",
        step,
        t.max_steps,
        math.ceil(step / spe),
        t.batch_train / per_step,
        time.strftime("%H:%M:%S", time.gmtime(eta)) if eta < 86400 else f"{eta / 86400:.1f} days",
        ", ".join(f"{k}={v:.4f}" for k, v in sorted(values.items())),
      )

  def close(self) -> None:
    pass


class _Outputs:
  """What the chief writes into --logdir: JSON logs, TensorBoard summaries, PNG grids."""

  def __init__(self, trainer: Trainer, resume_epoch: int):
    self.trainer = trainer
    self.logdir = trainer.logdir
    os.makedirs(self.logdir, exist_ok=True)
    self.hyperparameters = trainer.config.hyperparameters()
    self.logs = {}
    for side in trainer.sides:
      for split in ("train", "test"):
        self.logs[(split, side.key)] = JsonLog(
          os.path.join(self.logdir, f"{split}_{side.key}.txt"), self.hyperparameters, resume_epoch
        )
    self.writer = tf.summary.create_file_writer(self.logdir)

  def write_hparams(self) -> None:
    from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top

    values = {
      k: (v if isinstance(v, (bool, int, float, str)) else str(v))
      for k, v in self.hyperparameters.items()
    }
    with self.writer.as_default():
      hp.hparams(values, trial_id=os.path.abspath(self.logdir))
    self.writer.flush()

  def train_scalars(self, step: int, means: dict[str, float], learning_rate: float, rate: float):
    with self.writer.as_default(step=step):
      for k, v in means.items():
        tf.summary.scalar(f"train/{k}", v)
      tf.summary.scalar("learning_rate", learning_rate)
      tf.summary.scalar("images_per_sec", rate)
    self.writer.flush()

  def _record(self, side: Side, epoch: int, step: int, means: dict[str, float]) -> dict:
    k = side.lower
    return {
      "epoch": epoch,
      "n_processed": step * self.trainer.batch_train,
      "loss": means.get(f"loss_{k}"),
      "bits_x": means.get(f"bits_per_dim_{k}"),
      "bits_y": means.get(f"bits_y_{k}", 0.0),
      "pred_loss": means.get(f"pred_loss_{k}", 0.0),
      "code_loss": means.get("code_loss", 0.0),
      **({"translation_loss": means["translation_loss"]} if "translation_loss" in means else {}),
    }

  def train_logs(self, epoch: int, step: int, n_images: int, train_time: float, means):
    for side in self.trainer.sides:
      record = self._record(side, epoch, step, means)
      record.update(n_images=n_images, train_time=train_time)
      self.logs[("train", side.key)].write(record)

  def eval_logs(self, epoch: int, step: int, results: dict[str, float]) -> None:
    for side in self.trainer.sides:
      self.logs[("test", side.key)].write(self._record(side, epoch, step, results))
    with self.writer.as_default(step=step):
      for k, v in results.items():
        tf.summary.scalar(f"eval/{k}", v)
    self.writer.flush()

  def samples(self, epoch: int, step: int) -> None:
    trainer = self.trainer
    grids = trainer.sample_grids(trainer.config.n_sample)
    with self.writer.as_default(step=step):
      for key, batches in grids.items():
        for i, (t, images) in enumerate(zip(TEMPERATURES, batches)):
          grid = image_grid.make_grid(images)
          path = os.path.join(self.logdir, f"{key}_epoch_{epoch}_sample_{i}.png")
          image_grid.save_png(path, grid)
          tf.summary.image(f"samples/{key}_T{t:g}", grid[None])
      for name, grid in trainer.translation_grids().items():
        image_grid.save_png(os.path.join(self.logdir, f"{name}_epoch_{epoch}.png"), grid)
        tf.summary.image(f"translation/{name}", grid[None])
    self.writer.flush()
