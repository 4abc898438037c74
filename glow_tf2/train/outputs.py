"""What the chief writes while training: the original's JSON logs, TensorBoard, grids, progress;
and the images of the grids, drawn from the EMA models (`sample_grids`, `translation_grids`).

JSON logs (`train_A.txt`, `test_A.txt`, and `_B` for a joint run), as the original's
`ResultLogger` wrote them: the first line is every flag of the run (`TrainConfig.
hyperparameters`, keyed by flag name, in flag order), then one line per epoch

  train: {"epoch", "n_processed", "n_images", "train_time", "loss", "bits_x", "bits_y",
          "pred_loss", "code_loss", ..., "train_cpu_time"}
  test:  {"epoch", "n_processed", "n_images", "loss", "bits_x", "bits_y", "pred_loss",
          "code_loss"}

with `n_processed` and `n_images` the images trained on so far, `train_time` the whole seconds
spent training so far and `train_cpu_time` the CPU seconds (user + system, all threads) of that
training (all cumulative, not per epoch; validation, grids and checkpoints not counted;
`train_cpu_time` is not in the original's logs), and the statistics formatted as the original's
`"{:.4f}"` strings. A joint run with the translation loss adds "translation_loss" (and, in train
records, "translation_dropped": the steps whose term was dropped, and "translation_kept": the
rows whose translation decoded), a coupled pair "joint_bits_per_dim", "bits_b_given_a" and
"bits_a_given_b", a float16 run's train records "loss_scale" (the epoch's mean loss scale) and
"loss_scale_skipped" (the fraction of its steps skipped on overflow). A variationally dequantised
model (`--dequantization=variational`) adds "bits_x_vd", the bits/dim of its variational bound;
its train records have it in place of "bits_x" (training computes only the bound), its test
records beside the uniform "bits_x". A noise-augmented model (`--noise_sigma`) trains on noised
images, so its train records' "bits_x" are of noised data; its test records keep "bits_x" of
the clean test images and add "bits_x_noised", the same images plus sigma * N(0, I).

TensorBoard (event files in the logdir): train/* every --log_steps steps with learning_rate and
images_per_sec, eval/* at each validation, the sample and translation grids, and the run's
hyperparameters (the hparams plugin). PNG grids, one file per grid, each written atomically:
`{A,B}_samples_epoch_{e}.png` (`SAMPLE_GRID`: a row per temperature of `TEMPERATURES`, in that
order, a column per draw; the same draws at every epoch), `A2B_epoch_{e}.png`,
`B2A_epoch_{e}.png`.
"""

import json
import math
import os
import sys
import time

from absl import logging
import keras
import numpy as np
from tensorboard.plugins.hparams import api as hp
import tensorflow as tf

from glow_tf2 import image_grid
from glow_tf2.config import TEMPERATURES
from glow_tf2.train import judging
from glow_tf2.train import streams

N_TRANSLATE = 8  # fixed test pairs shown in the translation grids
# A side's sample grid of an epoch (`Outputs.grids`); glow-report reads it back.
SAMPLE_GRID = "{side}_samples_epoch_{epoch}.png"

# The original's per-epoch statistics, in its order.
STATS = ("loss", "bits_x", "bits_y", "pred_loss", "code_loss")
# Statistics a record holds only when the run has them: the translation loss, a coupled pair's
# joint and conditional bits/dim, and a float16 run's loss scale (train records only).
TRANSLATION_STATS = ("translation_loss", "translation_dropped", "translation_kept")
COUPLED_STATS = ("joint_bits_per_dim", "bits_b_given_a", "bits_a_given_b")
LOSS_SCALE_STATS = ("loss_scale", "loss_scale_skipped")
EXTRA_STATS = TRANSLATION_STATS + COUPLED_STATS + LOSS_SCALE_STATS


def format_stat(value: float) -> str:
  """The original's `"{:.4f}".format(value)`."""
  return f"{value:.4f}"


class JsonLog:
  """One JSON-lines log: first line the hyperparameters, then one line per epoch.

  On resume the file is rewritten (temporary file, then rename) with: the first line of
  hyperparameters (a fresh one if the file has none), then one record per epoch up to
  `resume_epoch` in epoch order, the last copy where an epoch appears twice. Dropped: lines of
  epochs after the restored one (written before a kill, e.g. between an epoch's log line and
  its checkpoint, then redone), a torn last line, and everything after an unreadable line.
  `last` is the last record kept.
  """

  def __init__(self, path: str, hyperparameters: dict, resume_epoch: int):
    self.path = path
    self.last: dict | None = None
    header = None
    records: dict[int, str] = {}
    if os.path.exists(path):
      with open(path) as f:
        for line in f:
          if not line.endswith("\n"):
            break  # torn by a kill
          try:
            record = json.loads(line)
          except json.JSONDecodeError:
            break
          if not isinstance(record, dict):
            break
          if "epoch" not in record:
            header = header or line
          elif isinstance(record["epoch"], int) and 1 <= record["epoch"] <= resume_epoch:
            records[record["epoch"]] = line
    lines = [header or json.dumps(hyperparameters, default=str) + "\n"]
    lines += [records[e] for e in sorted(records)]
    if records:
      self.last = json.loads(records[max(records)])
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
      f.writelines(lines)
    os.replace(tmp, path)

  def write(self, record: dict) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
      f.flush()
      os.fsync(f.fileno())
    self.last = record


class Mean:
  """Running means of a dict of floats, with the training seconds they cover.

  Two clocks: wall seconds, and the process's CPU seconds (user + system, every thread:
  `time.process_time`). On a machine shared with other work the wall time of a run says little
  about its cost and the CPU time still does, so runs are compared at equal CPU budgets.

  A mid-epoch checkpoint stores `state()` and a resumed run continues with `from_state`: the
  sums are Python floats (float64) and JSON writes floats in their shortest exact form, so the
  epoch's logged mean after a resume is the uninterrupted run's, bit for bit.

  Args:
    sums: running sums by name (a resumed state's).
    count: how many dicts were added.
    seconds: training seconds already covered (a resumed state's); the clock runs from now.
    cpu_seconds: likewise in CPU seconds.
  """

  def __init__(
    self,
    sums: dict[str, float] | None = None,
    count: int = 0,
    seconds: float = 0.0,
    cpu_seconds: float = 0.0,
  ):
    self.sums: dict[str, float] = dict(sums or {})
    self.count = count
    self._start = time.time() - seconds
    self._cpu_start = time.process_time() - cpu_seconds

  def add(self, values: dict[str, float]) -> None:
    for k, v in values.items():
      self.sums[k] = self.sums.get(k, 0.0) + v
    self.count += 1

  def result(self) -> dict[str, float]:
    return {k: v / max(self.count, 1) for k, v in self.sums.items()}

  def seconds(self) -> float:
    """Seconds of training covered: since creation, plus the resumed ones, minus pauses."""
    return time.time() - self._start

  def cpu_seconds(self) -> float:
    """CPU seconds of training covered, counted as `seconds` is."""
    return time.process_time() - self._cpu_start

  def pause(self, seconds: float, cpu_seconds: float = 0.0) -> None:
    """Leaves `seconds` and `cpu_seconds` (a checkpoint's save) out of the time covered."""
    self._start += seconds
    self._cpu_start += cpu_seconds

  def state(self) -> dict:
    return {
      "sums": dict(self.sums),
      "count": self.count,
      "seconds": self.seconds(),
      "cpu_seconds": self.cpu_seconds(),
    }

  @classmethod
  def from_state(cls, state: dict) -> "Mean":
    return cls(
      {str(k): float(v) for k, v in state["sums"].items()},
      int(state["count"]),
      float(state["seconds"]),
      float(state.get("cpu_seconds", 0.0)),  # a checkpoint written before the CPU clock
    )


def progress_state(step: int, epoch: Mean, window: Mean) -> str:
  """The running means of a mid-epoch checkpoint at `step`, as JSON ("" at an epoch's end).

  Stored in the training checkpoint (a string variable) so that a run resumed there logs the
  epoch's mean over all its steps, not only those after the resume.
  """
  if not epoch.count:
    return ""
  return json.dumps({"step": step, "epoch": epoch.state(), "window": window.state()})


def resume_means(state: str, step: int) -> tuple[Mean, Mean]:
  """(epoch, window) means to continue from at `step`: a checkpoint's `progress_state`, or
  fresh ones when it is empty (an epoch end, an older checkpoint) or of another step."""
  if state:
    try:
      record = json.loads(state)
      if record["step"] == step:
        return Mean.from_state(record["epoch"]), Mean.from_state(record["window"])
    except (ValueError, KeyError, TypeError, AttributeError):
      logging.warning("checkpoint's running means unreadable; the epoch mean restarts")
  return Mean(), Mean()


def format_eta(seconds: float) -> str:
  return (
    time.strftime("%H:%M:%S", time.gmtime(seconds))
    if seconds < 86400
    else (f"{seconds / 86400:.1f} days")
  )


class Progress:
  """Keras's progress bar on a terminal; otherwise a log line every `log_steps` steps.

  The line gives the step, the epoch, the training rate in images/s and the time left (ETA) at
  the rate so far, then the step's metrics.
  """

  def __init__(self, start: int, max_steps: int, steps_per_epoch: int, batch: int, log_steps: int):
    self.start, self.t0 = start, time.time()
    self.max_steps, self.spe, self.batch, self.log_steps = (
      max_steps,
      steps_per_epoch,
      batch,
      log_steps,
    )
    self.interactive = sys.stdout.isatty()
    self.bar = None

  def update(self, step: int, values: dict[str, float]) -> None:
    in_epoch = (step - 1) % self.spe + 1
    if self.interactive:
      if self.bar is None or in_epoch == 1:
        print(f"epoch {math.ceil(step / self.spe)}")
        target = min(self.spe, self.max_steps - (step - in_epoch))
        self.bar = keras.utils.Progbar(target, unit_name="step")
      self.bar.update(in_epoch, values=sorted(values.items()))
      return
    if step % self.log_steps == 0 or step == self.max_steps:
      per_step = (time.time() - self.t0) / max(step - self.start, 1)
      logging.info(
        "step %d/%d epoch %d: %.1f images/s, ETA %s; %s",
        step,
        self.max_steps,
        math.ceil(step / self.spe),
        self.batch / per_step,
        format_eta(per_step * (self.max_steps - step)),
        ", ".join(f"{k}={v:.4f}" for k, v in sorted(values.items())),
      )


class Outputs:
  """The chief's files in the logdir: JSON logs, TensorBoard summaries, PNG grids.

  Args:
    logdir: the run's folder.
    hyperparameters: the first line of the logs (`TrainConfig.hyperparameters()`).
    keys: the side keys ("A", "B").
    batch_train: the global training batch (images per step).
    resume_epoch: the epoch the run resumes after (0 for a fresh run).
  """

  def __init__(self, logdir: str, hyperparameters: dict, keys, batch_train: int, resume_epoch: int):
    self.logdir = logdir
    self.keys = list(keys)
    self.batch_train = batch_train
    os.makedirs(logdir, exist_ok=True)
    self.hyperparameters = hyperparameters
    self.logs = {
      (split, key): JsonLog(
        os.path.join(logdir, f"{split}_{key}.txt"), hyperparameters, resume_epoch
      )
      for key in self.keys
      for split in ("train", "test")
    }
    last = self.logs[("train", self.keys[0])].last or {}
    # Training seconds so far: cumulative across restarts, as the logs report them (a run
    # begun before the CPU clock counts its CPU seconds from its resume).
    self.train_time = float(last.get("train_time", 0))
    self.train_cpu_time = float(last.get("train_cpu_time", 0))
    self.writer = tf.summary.create_file_writer(logdir)

  def metric_tags(self) -> list[str]:
    """The eval scalars the HParams dashboard tabulates per run (what `eval_logs` writes)."""
    tags = [f"eval/{name}_{k.lower()}" for k in self.keys for name in ("loss", "bits_per_dim")]
    if len(self.keys) > 1:
      tags += ["eval/code_loss", "eval/translation_loss"]
      if self.hyperparameters.get("code_loss_type") == "coupled":
        tags += [f"eval/{name}" for name in COUPLED_STATS]
    if self.hyperparameters.get("dequantization") == "variational":
      tags += [f"eval/bits_per_dim_vd_{k.lower()}" for k in self.keys]
    if self.hyperparameters.get("noise_sigma"):
      tags += [f"eval/bits_per_dim_noised_{k.lower()}" for k in self.keys]
    if self.hyperparameters.get("judge_samples"):
      tags += [f"eval/{name}" for name in judging.metric_names(self.keys)]
    return tags

  def write_hparams(self) -> None:
    """The run's hyperparameters, and the declaration of them and of its metrics.

    Without `hparams_config` TensorBoard's HParams dashboard lists the hyperparameters of each
    run but no metric column, so runs cannot be compared in its table.
    """
    values = {
      k: (v if isinstance(v, (bool, int, float, str)) else str(v))
      for k, v in self.hyperparameters.items()
    }
    with self.writer.as_default():
      hp.hparams_config(
        hparams=[hp.HParam(name) for name in values],
        metrics=[hp.Metric(tag) for tag in self.metric_tags()],
      )
      hp.hparams(values, trial_id=os.path.abspath(self.logdir))
    self.writer.flush()

  def train_scalars(self, step: int, means: dict[str, float], learning_rate: float, rate: float):
    with self.writer.as_default(step=step):
      for k, v in means.items():
        tf.summary.scalar(f"train/{k}", v)
      tf.summary.scalar("learning_rate", learning_rate)
      tf.summary.scalar("images_per_sec", rate)
    self.writer.flush()

  def _record(self, key: str, epoch: int, step: int, means: dict[str, float], **times) -> dict:
    """One epoch's record of side `key` in the original's keys, order and formats."""
    k = key.lower()
    values = {
      "loss": means.get(f"loss_{k}", math.nan),
      "bits_x": means.get(f"bits_per_dim_{k}", math.nan),
      "bits_y": means.get(f"bits_y_{k}", 0.0),
      "pred_loss": means.get(f"pred_loss_{k}", 0.0),
      "code_loss": means.get("code_loss", 0.0),
    }
    for extra in EXTRA_STATS:
      if extra in means:
        values[extra] = means[extra]
    if f"bits_per_dim_vd_{k}" in means:
      values["bits_x_vd"] = means[f"bits_per_dim_vd_{k}"]
      if f"bits_per_dim_{k}" not in means:  # a train record: the uniform bits were not computed
        del values["bits_x"]
    if f"bits_per_dim_noised_{k}" in means:  # a noise-augmented model's own density
      values["bits_x_noised"] = means[f"bits_per_dim_noised_{k}"]
    n = step * self.batch_train
    return {
      "epoch": epoch,
      "n_processed": n,
      "n_images": n,
      **times,
      **{name: format_stat(v) for name, v in values.items()},
    }

  def train_logs(self, epoch: int, step: int, mean: Mean) -> None:
    """An epoch's train records from its `mean`, whose seconds add to `train_time` and CPU
    seconds to `train_cpu_time`."""
    self.train_time += mean.seconds()
    self.train_cpu_time += mean.cpu_seconds()
    for key in self.keys:
      record = self._record(key, epoch, step, mean.result(), train_time=int(self.train_time))
      # Last, after the original's keys and their order.
      record["train_cpu_time"] = int(self.train_cpu_time)
      self.logs[("train", key)].write(record)

  def eval_logs(self, epoch: int, step: int, results: dict[str, float]) -> None:
    for key in self.keys:
      record = self._record(key, epoch, step, results)
      record.pop("translation_dropped", None)
      record.pop("translation_kept", None)
      self.logs[("test", key)].write(record)
    with self.writer.as_default(step=step):
      for k, v in results.items():
        tf.summary.scalar(f"eval/{k}", v)
    self.writer.flush()

  def grids(
    self,
    epoch: int,
    step: int,
    samples: dict[str, list[np.ndarray]],
    translations: dict[str, np.ndarray],
  ) -> None:
    """Writes the sample grids ({key: a batch per temperature}) and translation grids.

    One PNG per side (`SAMPLE_GRID`): row i holds the draws at `TEMPERATURES[i]`, column j the
    same latent draw at every temperature, so a column shows one sample sharpen as T falls.
    TensorBoard keeps an image per temperature (`samples/<side>_T<t>`).
    """
    with self.writer.as_default(step=step):
      for key, batches in samples.items():
        path = os.path.join(self.logdir, SAMPLE_GRID.format(side=key, epoch=epoch))
        image_grid.save_png(path, image_grid.make_rows_grid(batches))
        for t, images in zip(TEMPERATURES, batches):
          tf.summary.image(f"samples/{key}_T{t:g}", image_grid.make_grid(images)[None])
      for name, grid in translations.items():
        image_grid.save_png(os.path.join(self.logdir, f"{name}_epoch_{epoch}.png"), grid)
        tf.summary.image(f"translation/{name}", grid[None])
    self.writer.flush()


def sample_grids(sides, n: int, n_classes: int, seed: int) -> dict[str, list[np.ndarray]]:
  """{side key: one uint8 `[n, H, W, C]` batch per temperature} from the sides' EMA models.

  The latent noise is a function of (--seed, side) (`streams.Stream.SAMPLE_LATENT`), the same
  at every call, so grids of successive epochs compare. `n_classes` > 0: sample i has class
  i mod n_classes.
  """
  labels = tf.range(n) % n_classes if n_classes > 0 else None
  out = {}
  for i, side in enumerate(sides):
    base = tf.random.stateless_normal(
      [n, side.ema.config.data_dim], seed=streams.seed(seed, streams.Stream.SAMPLE_LATENT, i, 0)
    )
    out[side.key] = [side.decode(t * base, labels).numpy() for t in TEMPERATURES]
  return out


def translation_grids(pair, batch: dict, labels=None) -> dict[str, np.ndarray]:
  """{"A2B": grid, "B2A": grid} of a pair (`glow_tf2.ImagePair`) at T = 0; rows: source,
  translation, ground truth, one column per test pair of `batch` (uint8 "image_a", "image_b")."""
  xa, xb = batch["image_a"].numpy(), batch["image_b"].numpy()
  a2b = pair.translate(xa, "a2b", labels=labels).numpy()
  b2a = pair.translate(xb, "b2a", labels=labels).numpy()
  return {
    "A2B": image_grid.make_rows_grid([xa, a2b, xb]),
    "B2A": image_grid.make_rows_grid([xb, b2a, xa]),
  }
