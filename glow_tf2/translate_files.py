"""A user's image files translated by a trained pair: one PNG per image (and draw) on disk.

`translate_files(pair, files, output_dir, plan)` is glow-translate's work. The files
(`user_images.find_images`) go through the pair in batches: each decoded and fitted to the
model's shape (`user_images.fit`), translated by `pair.translate` (an `ImagePair` or a
`SavedPair` of `glow_tf2.load_pair`), and written under `output_dir` with the relative name it
had under its input, as `<stem>.png`, or `<stem>_draw<k>.png` for several draws. A file that
cannot be decoded or written is logged by name, skipped and counted; the others go on.

Each PNG is written to a temporary name and renamed (`image_grid.save_png`): a file named
`*.png` is whole, even after a crash, and a rerun replaces the old outputs.

Draws at a temperature T > 0 come from the pair's stateless seeds, one per image
(`glow_tf2.seeds`): draw k of the image named `stem` uses `file_seed(seed, k, stem)`. So an
image's draws depend on the seed, the draw and its relative name only, not on the batch size,
its place in the list or the other files (a corrupt one included); the same command writes
the same files and another seed other draws. At T = 0 (the conditional mean) no seed matters.
"""

from collections.abc import Sequence
import dataclasses
import hashlib
import math
import os
import time

from absl import logging
import numpy as np

from glow_tf2 import image_grid
from glow_tf2 import pair as pair_lib
from glow_tf2 import user_images
from glow_tf2.input.records import DataError

MAX_SEED = 2**31 - 1  # the pair's stateless seeds are int32


@dataclasses.dataclass(frozen=True)
class Plan:
  """How to translate: checked at construction, so a binary can report a bad value at once.

  Attributes:
    direction: "a2b" or "b2a".
    temperature: T >= 0; 0 is the conditional mean, the same for every seed.
    seed: 0..2**31 - 1, the draws' seed at T > 0.
    draws: translations per image, >= 1 (more than one only at T > 0: at T = 0 all are equal).
    batch_size: images per call of the pair, >= 1.
    fit: "crop" or "resize" (`user_images.fit`).
    label: the class of every image, for a class-conditional pair (None otherwise).

  Raises:
    ValueError: a value that cannot work, naming the field.
  """

  direction: str = "a2b"
  temperature: float = 0.0
  seed: int = 0
  draws: int = 1
  batch_size: int = 32
  fit: str = "crop"
  label: int | None = None

  def __post_init__(self):
    if self.direction not in pair_lib.DIRECTIONS:
      raise ValueError(
        f"direction must be one of {', '.join(pair_lib.DIRECTIONS)}, got {self.direction!r}"
      )
    if not (math.isfinite(self.temperature) and self.temperature >= 0):
      raise ValueError(f"temperature must be finite and >= 0, got {self.temperature}")
    if not 0 <= self.seed <= MAX_SEED:
      raise ValueError(f"seed must be in 0..{MAX_SEED}, got {self.seed}")
    if self.draws < 1:
      raise ValueError(f"draws must be at least 1, got {self.draws}")
    if self.draws > 1 and self.temperature == 0:
      raise ValueError(
        f"draws={self.draws} at temperature 0: every draw would be the same conditional mean; "
        "give a temperature > 0"
      )
    if self.batch_size < 1:
      raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
    if self.fit not in user_images.FITS:
      raise ValueError(f"fit must be one of {', '.join(user_images.FITS)}, got {self.fit!r}")
    if self.label is not None and self.label < 0:
      raise ValueError(f"label must be >= 0, got {self.label}")


def check_pair(pair, plan: Plan) -> None:
  """Raises ValueError when `plan` cannot work with `pair` (its labels or its draws)."""
  classes = pair.n_classes
  if classes and plan.label is None:
    raise ValueError(f"the pair is class-conditional ({classes} classes): give every image's label")
  if not classes and plan.label is not None:
    raise ValueError("a label is given, but the pair is not class-conditional")
  if classes and plan.label >= classes:
    raise ValueError(f"label {plan.label} is not one of the pair's classes 0..{classes - 1}")
  if plan.temperature > 0 and pair.coupled and not pair.seed_per_row:
    raise ValueError(
      "the SavedModel was exported before per-row seeds and translates at temperature 0 only; "
      "re-export it with glow-export to draw at T > 0"
    )
  if plan.draws > 1 and not pair.coupled:
    raise ValueError(
      f"draws={plan.draws}: the pair has no coupled prior (rho = 1), so it ignores the "
      "temperature and every draw would be the same"
    )


def file_seed(seed: int, draw: int, stem: str) -> int:
  """The int32 row seed `pair.translate` gets for draw `draw` (from 0) of the image `stem`.

  A hash (SHA-256 of the three), not a sum: seeds 0 and 1 of a run share no draw, and no image
  reuses another's noise.
  """
  digest = hashlib.sha256(f"{seed}/{draw}/{stem}".encode()).digest()
  return int.from_bytes(digest[:4], "little") >> 1


def output_paths(output_dir: str, stem: str, draws: int) -> list[str]:
  """The PNGs of one image: `<stem>.png`, or `<stem>_draw<k>.png` for k < draws when draws > 1."""
  base = os.path.join(output_dir, *stem.split("/"))
  if draws == 1:
    return [f"{base}.png"]
  return [f"{base}_draw{k}.png" for k in range(draws)]


def format_duration(seconds: float) -> str:
  """H:MM:SS (days past 24 hours)."""
  seconds = max(0, round(seconds))
  hours, rest = divmod(seconds, 3600)
  return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class Progress:
  """Logs images done, the rate and the time left at the rate so far: at most one line every
  `every` seconds, and one at the end.

  Args:
    total: images to do.
    every: seconds between lines.
    clock: seconds, monotonic (a test's own clock).
  """

  def __init__(self, total: int, every: float = 10.0, clock=time.monotonic):
    self.total, self.every, self.clock = total, every, clock
    self.start = self.last = clock()

  def update(self, done: int) -> None:
    now = self.clock()
    if done < self.total and now - self.last < self.every:
      return
    self.last = now
    rate = done / max(now - self.start, 1e-9)
    eta = (self.total - done) / rate if rate > 0 else math.inf
    logging.info(
      "%d/%d images (%.0f%%), %.1f images/s, ETA %s",
      done,
      self.total,
      100 * done / max(self.total, 1),
      rate,
      format_duration(eta) if math.isfinite(eta) else "unknown",
    )


@dataclasses.dataclass
class Summary:
  """What a run did: images translated, the failures' messages (each names its file), the
  PNGs written (in order)."""

  translated: int = 0
  failed: list[str] = dataclasses.field(default_factory=list)
  written: list[str] = dataclasses.field(default_factory=list)

  def line(self) -> str:
    return f"{self.translated} translated, {len(self.failed)} failed"

  def fail(self, message: str) -> None:
    logging.warning("skipped %s", message)
    self.failed.append(message)


def _write(paths: Sequence[str], images: Sequence[np.ndarray]) -> None:
  for path, image in zip(paths, images):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    image_grid.save_png(path, image)


def translate_files(
  pair,
  files: Sequence[user_images.ImageFile],
  output_dir: str,
  plan: Plan,
  sheet: str | None = None,
  sheet_rows: int = 32,
  progress_every: float = 10.0,
) -> Summary:
  """Translates `files` with `pair` into PNGs under `output_dir` (see the module).

  Args:
    pair: an `ImagePair` or `SavedPair` (`glow_tf2.load_pair`).
    files: the images (`user_images.find_images`).
    output_dir: where the PNGs go, under each file's stem.
    plan: direction, temperature, seed, draws, batch size, fit and label.
    sheet: a PNG path for a contact sheet: a row per image (its first `sheet_rows`), the fitted
      input then its translations (`image_grid.make_grid`); None: none.
    sheet_rows: images on the sheet, at most.
    progress_every: seconds between progress lines.

  Returns:
    The `Summary`; each failure is also logged as it happens.
  """
  check_pair(pair, plan)
  shape = pair.image_shape
  summary, progress, rows = Summary(), Progress(len(files), progress_every), []
  for start in range(0, len(files), plan.batch_size):
    done, inputs = [], []
    for file in files[start : start + plan.batch_size]:
      try:
        inputs.append(user_images.fit(user_images.load(file.path), shape, plan.fit))
        done.append(file)
      except DataError as error:
        summary.fail(str(error))
    if done:
      x = np.stack(inputs)
      labels = None if plan.label is None else np.full([len(x)], plan.label, np.int32)
      draws = [
        np.asarray(
          pair.translate(
            x,
            plan.direction,
            plan.temperature,
            np.array([file_seed(plan.seed, k, file.stem) for file in done], np.int32),
            labels=labels,
          )
        )
        for k in range(plan.draws)
      ]
      for i, file in enumerate(done):
        paths = output_paths(output_dir, file.stem, plan.draws)
        try:
          _write(paths, [d[i] for d in draws])
        except OSError as error:
          summary.fail(f"{file.path}: cannot write its output ({error})")
          continue
        summary.translated += 1
        summary.written.extend(paths)
        if len(rows) < sheet_rows:
          rows.append(np.stack([x[i]] + [d[i] for d in draws]))
    progress.update(min(start + plan.batch_size, len(files)))
  if sheet and rows:
    os.makedirs(os.path.dirname(sheet) or ".", exist_ok=True)
    image_grid.save_png(sheet, image_grid.make_grid(np.concatenate(rows), n_cols=1 + plan.draws))
  return summary
