"""The coupled prior's figures: the bits/dim-PSNR frontier, several translations, pair samples.

- `plot_frontier`: one point per run of glow-eval's eval.json: the PSNR of translations into
  a side against that side's test bits/dim (with noise, the figure Glow reports), one panel
  per direction, with the nearest-neighbour baseline as a line. Better is up and left.
- `translation_rows`: for a coupled run, test inputs and k draws of x_B ~ p(x_B | x_A) at
  temperature T (eps_B = rho eps_A + T sqrt(1 - rho^2) n), then the true partner.
- `pair_samples`: matching pairs (x_A, x_B) drawn from the joint at temperature T.

All images come from the run's EMA models and EMA prior, as one `glow_tf2.ImagePair`
(`glow_tf2.load_pair`).
"""

from collections.abc import Sequence
import json
import os

import numpy as np
import tensorflow as tf

import glow_tf2
from glow_tf2 import image_grid
from glow_tf2 import pair as pair_lib
from glow_tf2 import run_dir
from glow_tf2 import seeds
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems


def frontier_point(run: str) -> dict[str, float]:
  """{bits_a, bits_b, a2b, b2a, nn_a2b, nn_b2a} of a paired run's eval.json (PSNR in dB)."""
  path = os.path.join(run, "eval.json")
  with open(path) as handle:
    metrics = json.load(handle)["metrics"]
  bits = metrics["bits_per_dim"]
  point = {f"bits_{k}": bits[k]["noise"]["mean"] for k in ("a", "b")}
  for d in ("a2b", "b2a"):
    t = metrics["translation"][d]
    point[d] = t["model"]["psnr"]
    nn = t.get("nearest_neighbour")
    point[f"nn_{d}"] = nn["psnr"] if nn else float("nan")
  return point


def read_points(path: str) -> tuple[list[dict[str, float]], list[str]]:
  """Recorded frontier points (runs whose folders are gone): a JSON list of {"label", "bits_a",
  "bits_b", "a2b", "b2a"} with optional "nn_a2b", "nn_b2a"; returns (points, labels)."""
  with open(path) as handle:
    entries = json.load(handle)
  keys = ("bits_a", "bits_b", "a2b", "b2a")
  points, labels = [], []
  for i, entry in enumerate(entries):
    missing = [k for k in ("label", *keys) if k not in entry]
    if missing:
      raise ValueError(f"{path}: point {i} lacks {', '.join(missing)}")
    points.append({k: float(entry.get(k, "nan")) for k in (*keys, "nn_a2b", "nn_b2a")})
    labels.append(str(entry["label"]))
  return points, labels


def plot_frontier(
  runs: Sequence[str],
  labels: Sequence[str],
  path: str,
  title: str,
  recorded: tuple[list[dict[str, float]], list[str]] | None = None,
) -> None:
  """Test bits/dim of the target side against the PSNR of translations into it, per run.

  `recorded`: more (points, labels) from `read_points`, drawn after the runs' own.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  points = [frontier_point(run) for run in runs]
  labels = list(labels)
  if recorded:
    points += recorded[0]
    labels += recorded[1]
  fig, axes = plt.subplots(1, 2, figsize=(12, 4), dpi=100)
  for ax, direction, target in zip(axes, ("a2b", "b2a"), ("b", "a")):
    # A legend rather than labels beside the points: close runs would print over each other.
    for i, (point, label) in enumerate(zip(points, labels)):
      marker = "os^Dv<>p*h"[i // 10 % 10]  # colours repeat after 10: change the marker
      ax.scatter(
        point[f"bits_{target}"],
        point[direction],
        color=f"C{i % 10}",
        marker=marker,
        zorder=3,
        label=label,
      )
    nn = [p[f"nn_{direction}"] for p in points if np.isfinite(p[f"nn_{direction}"])]
    if nn:
      ax.axhline(nn[0], color="grey", linestyle=":", label="nearest neighbour")
    ax.margins(x=0.1, y=0.1)
    ax.set_xlabel(f"test bits/dim of {target.upper()} (lower is better)")
    ax.set_ylabel(f"{direction[0].upper()} -> {direction[-1].upper()} PSNR (dB)")
    ax.grid(alpha=0.3)
  handles, names = axes[0].get_legend_handles_labels()
  fig.legend(handles, names, loc="center right", fontsize=8, frameon=False)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout(rect=(0, 0, 0.74, 1))
  fig.savefig(path)
  plt.close(fig)


def problem_of(run: str) -> problems.Problem:
  """The problem (data set) a run folder was trained on."""
  data = run_dir.read_config(run).config.data
  return problems.get_problem(
    data.problem, data_dir=data.data_dir, channels=data.channels, crop_size=data.crop_size
  )


def load_coupled(run: str):
  """(the `ImagePair` of a coupled run folder, its first 64 test pairs {"image_a", "image_b",
  "label"})."""
  pair = glow_tf2.load_pair(run)
  if not pair.coupled:
    raise ValueError(f"{run}: not a coupled run (--code_loss_type=coupled)")
  dataset = input_pipeline.make_dataset(problem_of(run), "test", 64, shuffle=False, repeat=False)
  batch = next(iter(dataset))
  return pair, {k: batch[k].numpy() for k in ("image_a", "image_b", "label")}


def class_labels(glow, labels) -> tf.Tensor | None:
  """`labels` as int32 for a class-conditional model, None for one that is not."""
  return tf.constant(labels, tf.int32) if glow.config.n_classes else None


def translation_rows(
  pair,
  images_a,
  images_b,
  temperature: float,
  draws: int,
  seed: int = 0,
  labels=None,
) -> np.ndarray:
  """A uint8 grid: one row per input (x_A, `draws` translations at T, x_B); `labels` [N]: the
  pairs' classes, for a class-conditional pair. Draw k of input i is decode_B of the pair's
  conditional code of encode_A(x_A) with the noise of the row seed seed + k n + i (n inputs),
  salted as A -> B: `pair.translate(images_a, "a2b", temperature, seed + k n)`'s draw."""
  eps_a = pair.encode(images_a, "a", labels)
  n = images_a.shape[0]
  columns = []
  for k in range(draws):
    row_seeds = seeds.per_row(seed + k * n, n)
    code = pair.conditional_code(eps_a, temperature, row_seeds, pair_lib.SALT_A2B)
    columns.append(pair.decode(code, "b", labels).numpy())
  cells = [images_a] + columns + [images_b]
  stacked = np.stack(cells, axis=1).reshape((n * len(cells),) + images_a.shape[1:])
  return image_grid.make_grid(stacked, n_cols=len(cells))


def pair_samples(pair, n: int, temperature: float, seed: int = 0) -> np.ndarray:
  """A uint8 grid of n sampled pairs (`ImagePair.sample_pairs`): columns alternate x_A, x_B (a
  class-conditional pair's pair i is of class i mod n_classes)."""
  n_classes = pair.config.n_classes
  labels = class_labels(pair.glow_a, np.arange(n) % max(n_classes, 1))
  a, b = (x.numpy() for x in pair.sample_pairs(n, temperature, seed, labels))
  stacked = np.stack([a, b], axis=1).reshape((2 * n,) + a.shape[1:])
  return image_grid.make_grid(stacked, n_cols=8)


def write_coupled_figures(run: str, prefix: str, n_inputs: int = 6, draws: int = 5) -> dict:
  """Writes <prefix>_multi_T0.7.png and <prefix>_pairs_T{0.7,1}.png; returns {what: path}."""
  pair, test = load_coupled(run)
  out = {}
  grid = translation_rows(
    pair,
    test["image_a"][:n_inputs],
    test["image_b"][:n_inputs],
    0.7,
    draws,
    labels=class_labels(pair.glow_a, test["label"][:n_inputs]),
  )
  out["multi"] = f"{prefix}_multi_T0.7.png"
  image_grid.save_png(out["multi"], grid)
  for t in (0.7, 1.0):
    out[f"pairs_{t:g}"] = f"{prefix}_pairs_T{t:g}.png"
    image_grid.save_png(out[f"pairs_{t:g}"], pair_samples(pair, 16, t))
  return out
