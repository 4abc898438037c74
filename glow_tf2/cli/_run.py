"""A finished training run for glow-eval and glow-export: its config, problem, EMA models, prior.

Built from the run folder alone (`glow_tf2.pair.read_run`, `glow_tf2.run_dir`): no Trainer,
optimizer or checkpoint manager. The problem (its data) is looked up only when it is needed: for
a run folder written before config.json existed (the image shape and classes come from the data
then), or for the data sets glow-eval reads.

A binary that writes into the run folder (glow-eval's default report, `<logdir>/eval.json`)
takes the folder's lock first (`hold_if_writing`), as glow-train does, so that it never writes
beside a training run or another writer; one that only reads (glow-export into its own folder)
takes none.
"""

import dataclasses
import os
from typing import Any

from glow_tf2 import pair as pair_lib
from glow_tf2 import run_dir
from glow_tf2 import run_lock
from glow_tf2.config import TrainConfig
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems


@dataclasses.dataclass
class LoadedRun:
  """A training run rebuilt from its logdir.

  Attributes:
    config: the run's resolved `TrainConfig` (logdir: where the run is now).
    keys: its sides, ("A",) or ("A", "B").
    glows: the EMA Glow of each side, A first, weights restored (None without `restore`).
    prior: a coupled run's EMA coupled prior (None for any other run, or without `restore`).
    checkpoints: the checkpoint each side was restored from.
  """

  config: TrainConfig
  keys: tuple[str, ...]
  glows: list[Any] | None = None
  prior: Any = None
  checkpoints: list[str] | None = None
  _problem: Any = None

  @property
  def problem(self):
    """The run's `Problem` (looked up at the first use)."""
    if self._problem is None:
      self._problem = problem_of(self.config)
    return self._problem

  @property
  def ycond(self) -> bool:
    return self.config.model.n_classes > 0

  def dataset(self, split: str, batch_size: int, dal: int = 0):
    """The run's images of `split` in order, as training read them (flip_color included)."""
    ds = input_pipeline.make_dataset(
      self.problem, split, batch_size, shuffle=False, repeat=False, dal=dal
    )
    if self.config.data.flip_color:
      ds = ds.map(lambda b: {**b, "image_b": 255 - b["image_b"]})
    return ds


def problem_of(config: TrainConfig):
  return problems.for_data(config.data)


def load_run(
  logdir: str,
  checkpoint: str = "auto",
  data_dir: str | None = None,
  restore: bool = True,
  weights: str = "ema",
) -> LoadedRun:
  """The run in `logdir` with its EMA (or trained) models restored from `checkpoint`.

  Args:
    logdir: the run's --logdir.
    checkpoint: "auto" (each side's best-test-loss model, else the last checkpoint), "last",
      or a checkpoint path (`run_dir.find_checkpoint`).
    data_dir: where the run's data is now, if it moved.
    restore: False to skip building and restoring the models (only the data is wanted).
    weights: "ema" (the Polyak averages, what glow-train validates and exports) or "trained"
      (`run_dir.WEIGHTS`).

  Raises:
    FileNotFoundError: no run or no checkpoint there.
    ValueError: a bad config.json, or checkpoints none of which reads
      (`run_dir.UnreadableCheckpointError`: a newer one that does not read is only skipped,
      with a logged line naming its bad file). glow-eval and glow-export print either in one line.
  """
  found = pair_lib.read_run(logdir, data_dir)
  run = LoadedRun(config=found.config, keys=found.keys)
  if restore:
    run.glows, run.checkpoints = run_dir.load_glows(found, checkpoint, weights)
    # Side A's checkpoint, found (and read whole) once: the prior is read from the same file.
    run.prior = run_dir.load_coupled_prior(found, checkpoint, run.checkpoints[0], weights)
  return run


def hold_if_writing(logdir: str, outputs, program: str) -> run_lock.RunLock | None:
  """The run folder's lock (`run_lock`) if any of `outputs` (the files a binary is about to
  write) is inside `logdir`, else None; release it when done (or let the process end).

  Raises:
    run_lock.FolderInUseError: another process (a glow-train run) holds the folder; the
      message names its pid.
  """
  folder = os.path.realpath(logdir)
  inside = [p for p in outputs if p and os.path.realpath(p).startswith(folder + os.sep)]
  return run_lock.hold(logdir, program) if inside else None
