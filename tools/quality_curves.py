"""glow-report's sample-quality figure: what the trainer's judges said at each validation.

A run trained with `--judge_samples=N` writes, at every validation, the scalars of
`glow_tf2.train.judging` to TensorBoard (eval/sample_confident_{a,b}_T{t},
eval/sample_frechet_{a,b}_T{t}, eval/sample_frechet_floor_{a,b}, ...). `curves` reads them and
puts each validation at the training minutes the JSON logs give for its step; `plot` draws the
confident fraction and the Frechet distance at one temperature against those minutes, every run
and side, with the real images' floor dashed. Other x axes: `x="cpu_minutes"`, the CPU minutes of
training (`train_cpu_time`: runs of different sizes that shared a machine, whose wall minutes do
not compare), and `x="steps"` (runs of one model size).
"""

from collections.abc import Sequence
import glob
import json
import os

import numpy as np

X_AXES = {
  "minutes": "training time (minutes, 2 CPU cores)",
  "cpu_minutes": "training CPU time (minutes, all threads)",
  "steps": "training steps",
}


def _train_minutes(run: str, side: str, clock: str = "train_time") -> dict[int, float]:
  """{step: cumulative training minutes of `clock`} at the end of each logged epoch of `side`
  (epochs logged before that clock existed are left out)."""
  path = os.path.join(run, f"train_{side}.txt")
  with open(path) as handle:
    lines = [json.loads(line) for line in handle.read().splitlines()[1:] if line.strip()]
  with open(os.path.join(run, "config.json")) as handle:
    config = json.load(handle)["config"]
  # n_processed counts the anchored global batch (glow_tf2.config.TrainConfig.global_batches).
  size = config["model"]["image_shape"][0]
  batch = max(1, int(config["n_batch_train"] * min(1.0, (config["anchor_size"] / size) ** 2)))
  return {int(r["n_processed"]) // batch: float(r[clock]) / 60.0 for r in lines if clock in r}


def scalars(run: str, prefix: str = "eval/") -> dict[str, dict[int, float]]:
  """{tag: {step: value}} of a run's TensorBoard events under `prefix` (the last write wins)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  out: dict[str, dict[int, float]] = {}
  for path in sorted(glob.glob(os.path.join(run, "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if not value.tag.startswith(prefix) or not value.HasField("tensor"):
          continue
        array = tf.make_ndarray(value.tensor)
        if array.size == 1 and array.dtype.kind == "f":  # scalars, not images or strings
          out.setdefault(value.tag, {})[int(event.step)] = float(array)
  return out


def curves(run: str, temperature: float = 0.7) -> dict[str, dict[str, np.ndarray]]:
  """{side: {"minutes", "cpu_minutes", "steps", "confident", "frechet", "floor"}} of a judged
  run ({} if not judged); the validations at steps with no logged CPU time (a run begun before
  that clock) are NaN in "cpu_minutes"."""
  found = scalars(run)
  out = {}
  for side in ("a", "b"):
    confident = found.get(f"eval/sample_confident_{side}_T{temperature:g}")
    frechet = found.get(f"eval/sample_frechet_{side}_T{temperature:g}")
    if not confident or not frechet:
      continue
    minutes = _train_minutes(run, side.upper())
    cpu_minutes = _train_minutes(run, side.upper(), "train_cpu_time")
    steps = sorted(s for s in confident if s in minutes and s in frechet)
    floor = found.get(f"eval/sample_frechet_floor_{side}", {})
    out[side] = {
      "minutes": np.array([minutes[s] for s in steps]),
      "cpu_minutes": np.array([cpu_minutes.get(s, np.nan) for s in steps]),
      "steps": np.array(steps),
      "confident": np.array([confident[s] for s in steps]),
      "frechet": np.array([frechet[s] for s in steps]),
      "floor": np.array([floor.get(s, np.nan) for s in steps]),
    }
  return out


def plot(
  runs: Sequence[str],
  labels: Sequence[str],
  path: str,
  title: str,
  temperature: float = 0.7,
  x: str = "minutes",
) -> bool:
  """The figure of the module docstring; False (nothing written) when no run was judged."""
  if x not in X_AXES:
    raise ValueError(f"x must be one of {sorted(X_AXES)}, got {x!r}")
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  found = [(label, curves(run, temperature)) for run, label in zip(runs, labels)]
  found = [(label, c) for label, c in found if c]
  if not found:
    return False
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
  floors = []
  for i, (label, by_side) in enumerate(found):
    for side, c in by_side.items():
      style = dict(marker=".", color=f"C{i}", linestyle="-" if side == "a" else "--")
      name = f"{label} {side.upper()}" if len(by_side) > 1 else label
      left.plot(c[x], c["confident"], label=name, **style)
      right.plot(c[x], c["frechet"], label=name, **style)
      floors += list(c["floor"][np.isfinite(c["floor"])])
  if floors:
    right.axhline(float(np.median(floors)), color="grey", linestyle=":", label="real images")
  left.set_ylabel(f"samples at T = {temperature:g} classified with p >= 0.9")
  left.set_ylim(0, 1)
  right.set_ylabel(f"Frechet distance of samples at T = {temperature:g}")
  right.set_yscale("log")
  for ax in (left, right):
    ax.set_xlabel(X_AXES[x])
    ax.grid(alpha=0.3)
  right.legend(fontsize=7)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return True
