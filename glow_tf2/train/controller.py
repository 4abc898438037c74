"""The order of a run, as Orbit's Controller keeps it: init or resume, the loop, its saves.

The controller drives a run's parts (`loop.Trainer`: its sides, step functions, data and
grids) and owns the training checkpoint, the best-model files and the cadence of everything
the chief writes:

1. If `<logdir>/checkpoints` has a checkpoint, restore everything from it: step, both models, EMA
   copies, optimizer slots and iteration counts (hence the lr schedule), best test losses.
2. Else run the data-dependent ActNorm init once (`Trainer.initialize`), then restore
   `--restore_path_A` / `--restore_path_B` into that side only.
3. Write `<logdir>/config.json`, then train; at the end of every epoch write the JSON logs,
   validate every `epochs_full_valid` epochs (saving a side's best model when its test loss
   improves, `SaveBestModels`), draw sample and translation grids every `epochs_full_sample`
   epochs, then save a checkpoint. The last step of the run (from --epochs or --train_steps)
   always validates, samples and saves. Between epoch ends, a checkpoint is also saved every
   --checkpoint_steps steps and whenever --checkpoint_secs seconds passed since the last save.

The step function is the run's (`Trainer.steps`), or before --warm_start_steps the warm start's
(`Trainer.warm_steps`: each side alone, the same optimizers and step counter).

Resuming is exact: the data of step s is a function of (--seed, s) (`Trainer.train_iterator`),
the noise is a function of (seed, step) (`streams`), and the checkpoint holds everything else,
so a run killed at any step and resumed reaches the weights of an uninterrupted run. A resumed
run must have the architecture of its folder's config.json (`check_same_architecture`, a
one-line ConfigError). A checkpoint saved inside an epoch also holds the running sums of the
epoch's statistics (`outputs.progress_state`), so the epoch's JSON record after a resume is the
uninterrupted run's.

Checkpoints are written by `tf.train.CheckpointManager` (data files first, then the `checkpoint`
index file atomically), so a run killed at any moment, even with SIGKILL, resumes from the last
complete checkpoint. Nothing non-finite is ever saved (`finite.py`): a non-finite training loss
or evaluation raises `NonFiniteLossError` naming the step, and every save first runs
`FiniteChecks.savable`.

A run loses nothing to SIGTERM or SIGINT (`preemption.py`): between two steps the controller
asks whether one arrived (on any worker), and if so saves the checkpoint a periodic step save
would (with the epoch's running sums, so the rerun resumes bitwise), flushes the logs and
raises `preemption.Preempted`. A checkpoint that does not read is skipped for the newest one
that does (`run_dir.newest_readable`), and a full disk stops the run with one line naming the
folder (`run_dir.NoSpaceError`), the older checkpoints intact.
"""

import math
import os
import shutil
import time

from absl import logging
import tensorflow as tf

from glow_tf2 import run_dir
from glow_tf2.config import FIELD_FLAGS
from glow_tf2.config import ConfigError
from glow_tf2.train import finite
from glow_tf2.train import outputs as outputs_lib
from glow_tf2.train import preemption

# GlowConfig fields a checkpoint's variables depend on: a resumed run must keep them (precision
# only changes what the coupling networks compute in, so it may change).
ARCHITECTURE_FIELDS = (
  "image_shape",
  "n_levels",
  "depth",
  "width",
  "permutation",
  "coupling",
  "learntop",
  "n_classes",
  "n_bits_x",
  "dequantization",
)


# Parts of the training checkpoint an older or another precision's checkpoint may lack.
OPTIONAL_PARTS = ("epoch_progress", "loss_scale")


def _show(value) -> str:
  """A field's value as a flag would spell it (image shapes by their side)."""
  if isinstance(value, tuple):
    return "x".join(str(v) for v in value)
  if isinstance(value, bool):
    return str(value).lower()
  return str(value)


class SaveBestModels:
  """Orbit's "save the best model" action: each side's `best_<X>/` when its test loss improved.

  Args:
    sides: the run's sides (each with its `best_loss` variable, checkpointed with the run).
    write_root: the folder this worker writes to (the logdir on the chief).
    check_savable: called with the step before any save (`FiniteChecks.savable`).
    after_save: called after each save (a worker's scratch copy is dropped).
    warm_start_steps: a warm-started run's switch (0: none). Test losses of the warm phase
      (each side's bits/dim alone) and of the joint phase (plus the translation term) do not
      compare: a best model of the warm phase, whose prior is untrained, would stay the best
      for good. After the switch a best of the warm phase is replaced by the first validation.
  """

  def __init__(self, sides, write_root: str, check_savable, after_save, warm_start_steps=0):
    self.sides = sides
    self.check_savable = check_savable
    self.after_save = after_save
    self.warm_start_steps = int(warm_start_steps)
    self.managers = {
      side.key: tf.train.CheckpointManager(
        side.checkpoint,
        run_dir.best_dir(write_root, side.key),
        max_to_keep=1,
        checkpoint_name=run_dir.best_checkpoint_name(side.key),
      )
      for side in sides
    }

  def __call__(self, results: dict[str, float], step: int) -> None:
    """Saves each side whose `loss_<x>` in `results` beats its best."""
    for side in self.sides:
      loss = results[f"loss_{side.lower}"]
      if self._best_of_the_warm_phase(side, step):
        side.best_loss.assign(math.inf)
      if loss < float(side.best_loss.read_value()):
        self.check_savable(step)
        side.best_loss.assign(loss)
        run_dir.save_checkpoint(self.managers[side.key], step)
        self.after_save()

  def _best_of_the_warm_phase(self, side, step: int) -> bool:
    """Whether `step` is past the switch and the side's best was saved at or before it (a
    validation at the switch's step is the warm phase's: the joint steps come after it)."""
    if not self.warm_start_steps or step <= self.warm_start_steps:
      return False
    best = self.managers[side.key].latest_checkpoint
    return best is not None and int(best.rsplit("-", 1)[1]) <= self.warm_start_steps


class Controller:
  """The loop, the checkpoints and the cadence of a run.

  Args:
    run: the `loop.Trainer` of the run (its config, strategy, step, sides, coupling, steps,
      warm_steps, data, grids and sizes).
    evaluator: its `evaluator.Evaluator`.
  """

  def __init__(self, run, evaluator):
    self.run = run
    self.evaluator = evaluator
    self.config = run.config
    parts = {"step": run.step}
    for side in run.sides:
      parts[f"model_{side.lower}"] = side.checkpoint
      parts[f"optimizer_{side.lower}"] = side.optimizer
      parts[f"best_loss_{side.lower}"] = side.best_loss
    if run.coupling:
      parts["coupled"] = run.coupling.checkpoint
      parts["optimizer_coupled"] = run.coupling.optimizer
    # The running means of the epoch at a mid-epoch save (`outputs.progress_state`), so that a
    # resumed run's epoch line covers the whole epoch. Not distributed: every worker holds it.
    self.progress = tf.Variable("", dtype=tf.string, trainable=False, name="epoch_progress")
    parts["epoch_progress"] = self.progress
    # A float16 run's loss scale (`loss_scale.py`): an exact resume continues with its S.
    if run.loss_scale:
      parts["loss_scale"] = run.loss_scale
    self._parts = parts
    self.checkpoint = tf.train.Checkpoint(**parts)
    self.logdir = run.logdir
    # Every worker must save (MultiWorkerMirroredStrategy); only the chief's files are kept.
    write_root = (
      self.logdir if run.is_chief else os.path.join(self.logdir, f".worker_{run.task_id}")
    )
    self._scratch = None if run.is_chief else write_root
    self.checkpoint_dir = run_dir.checkpoint_dir(self.logdir)
    self.manager = tf.train.CheckpointManager(
      self.checkpoint, run_dir.checkpoint_dir(write_root), max_to_keep=self.config.keep_checkpoints
    )
    self.checks = finite.FiniteChecks(
      run.sides,
      run.coupling,
      run.steps,
      run.translation_pairs,
      run.glow_config.n_bits_x,
      self.checkpoint_dir,
    )
    self.save_best = SaveBestModels(
      run.sides,
      write_root,
      self.checks.savable,
      self._drop_scratch,
      self.config.warm_start_steps if run.warm_steps else 0,
    )
    self._last_save = time.time()
    self.restored_from = ""  # the checkpoint the run resumed from (`restore_or_initialize`)

  # -----------------------------------------------------------------------------------------------
  # Start: resume, or initialise and restore single models.

  def restore_or_initialize(self) -> int:
    """Returns the step to continue from (0 for a fresh run)."""
    run, config = self.run, self.config
    # The newest checkpoint that reads whole: a newer broken one is named in a logged line.
    latest = run_dir.newest_readable(self.checkpoint_dir)
    self.restored_from = latest or ""
    if latest:
      self.check_same_architecture()
      self._restore(latest)
      logging.info("resumed from %s at step %d", latest, int(run.step.read_value()))
      if config.restore_path_a or config.restore_path_b:
        logging.warning("--restore_path_A/B ignored: resuming the run in %s", self.logdir)
      return int(run.step.read_value())
    run.initialize()
    for side, path in zip(run.sides, (config.restore_path_a, config.restore_path_b)):
      if path:
        side.restore(path, run.strategy)
    return 0

  def _restore(self, prefix: str) -> None:
    """Restores the training checkpoint `prefix`, every part it holds.

    Parts a checkpoint may lack keep their values: the running means (a checkpoint written
    before they were saved: the epoch mean restarts) and the loss scale (a checkpoint of a run
    trained in another precision, or written before the scale was saved: S starts afresh).
    """
    names = [name for name, _ in tf.train.list_variables(prefix)]
    parts = {
      key: part
      for key, part in self._parts.items()
      if key not in OPTIONAL_PARTS or any(name.startswith(f"{key}/") for name in names)
    }
    if "epoch_progress" not in parts:
      self.progress.assign("")
    tf.train.Checkpoint(**parts).restore(prefix).assert_existing_objects_matched()

  def check_same_architecture(self) -> None:
    """Refuses to resume a run folder whose config.json has another model or other sides."""
    try:
      saved = run_dir.read_config(self.logdir)
    except (FileNotFoundError, ValueError):
      return  # an older folder without config.json: the checkpoint restore checks the shapes
    keys = self.run.keys
    if saved.keys != keys:
      raise ConfigError(
        f"--joint_train={len(keys) > 1}: the run in {self.logdir} trains sides "
        f"{'+'.join(saved.keys)}, this command {'+'.join(keys)}; use another --logdir"
      )
    for field in ARCHITECTURE_FIELDS:
      was, now = getattr(saved.config.model, field), getattr(self.run.glow_config, field)
      if was != now:
        flag = {"image_shape": "image_size", "n_classes": "ycond"}.get(field) or FIELD_FLAGS[
          f"model.{field}"
        ]
        if field == "n_classes":  # --ycond: classes or none
          was, now = was > 0, now > 0
        raise ConfigError(
          f"--{flag}={_show(now)}: the run in {self.logdir} was trained with --{flag}="
          f"{_show(was)}; resume with the same value or use another --logdir"
        )
    # The coupled prior's variable exists only in coupled runs, its size set by per_dimension.
    was, now = saved.config.loss, self.config.loss
    changed = None
    if was.coupled != now.coupled:
      changed = ("code_loss_type", was.code_loss_type, now.code_loss_type)
    elif now.coupled and was.coupled_per_dimension != now.coupled_per_dimension:
      changed = ("coupled_per_dimension", was.coupled_per_dimension, now.coupled_per_dimension)
    if changed:
      flag, was_value, now_value = changed
      raise ConfigError(
        f"--{flag}={_show(now_value)}: the run in {self.logdir} was trained with --{flag}="
        f"{_show(was_value)}; resume with the same value or use another --logdir"
      )

  # -----------------------------------------------------------------------------------------------
  # The loop.

  def step_function(self):
    """The warm start's step (each side alone) before --warm_start_steps, then the run's."""
    run = self.run
    if run.warm_steps and int(run.step.read_value()) < self.config.warm_start_steps:
      return run.warm_steps.train_step
    return run.steps.train_step

  def train_step(self, iterator) -> dict[str, float]:
    """One optimisation step of every side on the next global batch; returns its metrics."""
    return {k: float(v) for k, v in self.step_function()(iterator).items()}

  def fit(self) -> dict[str, float]:
    """Trains until --epochs or --train_steps; returns the last epoch's train metrics.

    Raises:
      preemption.Preempted: SIGTERM or SIGINT arrived (on any worker); the step in flight was
        finished and saved.
    """
    with preemption.Watch(self.run.strategy) as watch:
      return self._fit(watch)

  def _fit(self, watch: preemption.Watch) -> dict[str, float]:
    run, config = self.run, self.config
    start = self.restore_or_initialize()
    spe, max_steps, batch = run.steps_per_epoch, run.max_steps, run.batch_train
    outputs = None
    if run.is_chief:
      run_dir.write_config(self.logdir, config, run.keys)
      outputs = outputs_lib.Outputs(
        self.logdir, config.hyperparameters(), run.keys, batch, start // spe
      )
      outputs.write_hparams()
    if start >= max_steps:
      logging.info("nothing to do: step %d >= %d", start, max_steps)
      return {}
    iterator = run.train_iterator(start)
    progress = outputs_lib.Progress(start, max_steps, spe, batch, config.log_steps)
    progress.interactive = progress.interactive and run.is_chief
    # Resumed mid-epoch: the epoch's (and the log window's) sums and seconds before the save.
    epoch_mean, window_mean = outputs_lib.resume_means(self.progress.numpy().decode(), start)
    self._last_save = time.time()
    step, last = start, {}
    saved = self.restored_from  # the checkpoint of `step`, if one holds it
    while step < max_steps:
      # Between two steps, with every worker: a signal stops the run here, its step saved.
      signum = watch.agreed()
      if signum:
        if not saved and step > start:  # (at `start` nothing was trained since the restore)
          saved = self.save(outputs_lib.progress_state(step, epoch_mean, window_mean))
        if outputs:
          outputs.writer.flush()
        raise preemption.Preempted(signum, step, max_steps, saved, watch.received == signum)
      if step % spe == 0 and step > start:
        iterator = run.train_iterator(step)  # the next epoch's own data stream
      metrics = self.step_function()(iterator)
      step += 1
      saved = ""
      values = {k: float(v) for k, v in metrics.items()}
      bad = {k: v for k, v in values.items() if not math.isfinite(v)}
      if bad:
        raise finite.NonFiniteLossError(
          f"non-finite loss at step {step} (epoch {math.ceil(step / spe)}): {bad}; training "
          f"stopped, {self.checks.last_good_checkpoint()}"
        )
      epoch_mean.add(values)
      window_mean.add(values)
      if run.is_chief:
        progress.update(step, values)
      end_of_epoch = step % spe == 0 or step == max_steps
      if step % config.log_steps == 0 or end_of_epoch:
        rate = window_mean.count * batch / max(window_mean.seconds(), 1e-9)
        if outputs:
          outputs.train_scalars(
            step, window_mean.result(), float(run.learning_rate(step - 1)), rate
          )
        window_mean = outputs_lib.Mean()
      if end_of_epoch:
        epoch = math.ceil(step / spe)
        last = epoch_mean.result()
        final = step == max_steps
        # A run stopped inside an epoch (--train_steps) keeps the epoch's sums, so that a rerun
        # with a higher --train_steps logs the whole epoch; an epoch's end starts afresh.
        state = outputs_lib.progress_state(step, epoch_mean, window_mean) if step % spe else ""
        if outputs:
          outputs.train_logs(epoch, step, epoch_mean)
        if epoch % config.epochs_full_valid == 0 or final:
          self.validate(epoch, step, outputs)
        # Glow also drew the grids of epochs 1 and 10, to see a run take shape early.
        if outputs and (epoch in (1, 10) or epoch % config.epochs_full_sample == 0 or final):
          outputs.grids(epoch, step, run.sample_grids(config.n_sample), run.translation_grids())
        saved = self.save(state)
        # Validation, images and checkpoints do not count against the training rate.
        epoch_mean, window_mean = outputs_lib.Mean(), outputs_lib.Mean()
      elif self.checkpoint_due(step):
        began, began_cpu = time.time(), time.process_time()
        saved = self.save(outputs_lib.progress_state(step, epoch_mean, window_mean))
        for mean in (epoch_mean, window_mean):
          mean.pause(time.time() - began, time.process_time() - began_cpu)
    if watch.received:
      name = preemption.signal_name(watch.received)
      logging.info("%s arrived after the last step: the run is complete", name)
    return last

  def checkpoint_due(self, step: int) -> bool:
    """Whether --checkpoint_steps or --checkpoint_secs asks for a save after `step`.

    Every worker of a multi-worker run must save at the same step (saving is collective), so
    there the chief's clock decides, broadcast every --log_steps steps.
    """
    config, strategy = self.config, self.run.strategy
    if config.checkpoint_steps and step % config.checkpoint_steps == 0:
      return True
    if not config.checkpoint_secs:
      return False
    late = time.time() - self._last_save >= config.checkpoint_secs
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
      return late
    if step % config.log_steps:
      return False
    flag = tf.constant(float(late and self.run.is_chief))
    votes = strategy.run(lambda: tf.identity(flag))
    return float(strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)) > 0

  # -----------------------------------------------------------------------------------------------
  # Validation and saves.

  def validate(self, epoch: int, step: int, outputs=None) -> dict[str, float]:
    """Evaluates, saves each side's model when its test loss improved, logs the results."""
    results = self.evaluator.evaluate()
    bad = {k: v for k, v in results.items() if not math.isfinite(v)}
    if bad:
      raise finite.NonFiniteLossError(
        f"non-finite evaluation at step {step} (epoch {epoch}): {bad}; nothing saved, training "
        f"stopped, {self.checks.last_good_checkpoint()}"
      )
    self.save_best(results, step)
    results.update(self.evaluator.sample_scores())
    if outputs:
      outputs.eval_logs(epoch, step, results)
    logging.info(
      "epoch %d step %d eval: %s",
      epoch,
      step,
      ", ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())),
    )
    return results

  def save(self, progress: str = "") -> str:
    """A training checkpoint of the current step, once `FiniteChecks.savable` passed.

    Args:
      progress: the running means of the epoch (`outputs.progress_state`), "" at its end.

    Returns:
      The checkpoint's prefix in the run folder (the chief's, on every worker).

    Raises:
      run_dir.NoSpaceError: the disk is full (the older checkpoints are intact).
    """
    step = int(self.run.step.read_value())
    self.checks.savable(step)
    self.progress.assign(progress)
    path = run_dir.save_checkpoint(self.manager, step)
    self._last_save = time.time()
    self._drop_scratch()
    return os.path.join(self.checkpoint_dir, os.path.basename(path))

  def _drop_scratch(self) -> None:
    if self._scratch:
      shutil.rmtree(self._scratch, ignore_errors=True)
