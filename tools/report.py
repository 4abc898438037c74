"""glow-report: the README's results figures and table from finished glow-train runs.

  glow-report --runs=runs/mnist,runs/mnist_nojoint --labels="joint,no joint" \\
      --output_dir=docs/results --name=mnist

Reads what glow-train and glow-eval leave in each run folder (`train_X.txt` / `test_X.txt`
JSON logs, the last epoch's sample and translation grids, `eval.json`) and writes, for
`--name=N`:
  N_curves.png        test bits/dim (EMA weights) against training time, every run and side;
  N_sample_quality.png  for runs trained with --judge_samples: the samples' confident fraction
                      and Frechet distance at T = 0.7 against training time (quality_curves.py);
  N_samples.png       the first run's samples at temperatures 0, 0.5, 0.7 and 1.0, each side;
  N_translations.png  A -> B and B -> A on the first test pairs (rows: source, translation,
                      truth), every paired run;
  N_frontier.png      with several paired runs: the PSNR of translations into each side against
                      that side's test bits/dim, one point per run;
  N_<label>_multi_T0.7.png, N_<label>_pairs_T{0.7,1}.png   for each coupled run: several
                      translations per test input at T = 0.7, and sampled pairs;
  N_<label>_interpolation.png, N_<label>_manipulation.png   for each coupled run: A's codes
                      along a line between test images and along a label's direction
                      (--manipulate_label), decoded by A and translated into B
                      (tools/latent_strips.py);
  N_table.md          the glow-eval metrics of every run, one row each (with --pixel_baseline,
                      also the bits/dim of independent pixels on one-domain runs' data).
Training time is the sum of the logged per-epoch training times: test evaluation, grids and
checkpoints are not counted, as in the PyTorch Glow figures we compare with.
"""

from collections.abc import Sequence
import json
import math
import os
import re
import sys

from absl import app
from absl import flags
import numpy as np
from PIL import Image

from glow_tf2 import image_grid

# The rows of the sample grids glow-train writes are at glow_tf2.config.TEMPERATURES, in order.
from glow_tf2.config import TEMPERATURES
from glow_tf2.train.outputs import SAMPLE_GRID
from glow_tf2_tools import quality_curves

SHOWN_TEMPERATURES = (0.0, 0.5, 0.7, 1.0)
SIDES = ("A", "B")


class ReportError(ValueError):
  """A run folder lacks what the report needs; the message names the file."""


def _read_jsonl(path: str) -> list[dict]:
  """The records of a glow-train JSON log (its first line is the hyperparameters)."""
  if not os.path.isfile(path):
    raise ReportError(f"{path}: missing (not a finished glow-train run?)")
  with open(path) as handle:
    lines = [line for line in handle.read().splitlines() if line.strip()]
  try:
    return [json.loads(line) for line in lines[1:]]
  except json.JSONDecodeError as e:
    raise ReportError(f"{path}: not a JSON log ({e})") from None


def sides_of(run: str) -> list[str]:
  return [s for s in SIDES if os.path.isfile(os.path.join(run, f"train_{s}.txt"))]


def test_curve(run: str, side: str) -> dict[str, np.ndarray]:
  """{"minutes", "bits"}: test bits/dim of one side after each evaluation, against the training
  minutes elapsed by then (the cumulative train_time of that epoch; older logs: the sum).

  A resumed run logs an epoch again after a restart; the last record of an epoch wins.
  """
  train = {r["epoch"]: r["train_time"] for r in _read_jsonl(os.path.join(run, f"train_{side}.txt"))}
  test = {
    r["epoch"]: float(r["bits_x"]) for r in _read_jsonl(os.path.join(run, f"test_{side}.txt"))
  }
  epochs = sorted(e for e in test if all(k in train for k in range(1, e + 1)))
  if not epochs:
    raise ReportError(f"{os.path.join(run, f'test_{side}.txt')}: no evaluated epoch")
  times = [train[e] for e in range(1, max(epochs) + 1)]
  # Logs keyed by flag name (the original's format) hold the cumulative train_time; older
  # glow_tf2 logs (keyed by config field) held each epoch's.
  elapsed = np.array(times) if "flow_permutation" in _hyperparameters(run) else np.cumsum(times)
  return {
    "minutes": np.array([elapsed[e - 1] / 60.0 for e in epochs]),
    "bits": np.array([test[e] for e in epochs]),
  }


def last_epoch_png(run: str, pattern: str) -> str:
  """The path of the newest `pattern` grid (pattern holds `{epoch}`)."""
  regex = re.compile(re.escape(pattern).replace(re.escape("{epoch}"), r"(\d+)") + "$")
  found = [(int(m.group(1)), name) for name in os.listdir(run) for m in [regex.match(name)] if m]
  if not found:
    raise ReportError(f"{run}: no {pattern.format(epoch='N')} grid")
  return os.path.join(run, max(found)[1])


def _image(path: str) -> np.ndarray:
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"))


def plot_curves(runs: Sequence[str], labels: Sequence[str], path: str, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
  for i, (run, label) in enumerate(zip(runs, labels)):
    for side in sides_of(run):
      curve = test_curve(run, side)
      name = f"{label} {side}" if len(sides_of(run)) > 1 else label
      ax.plot(
        curve["minutes"],
        curve["bits"],
        marker=".",
        color=f"C{i}",
        linestyle="-" if side == "A" else "--",
        label=name,
      )
  ax.set_xlabel("training time (minutes, 2 CPU cores)")
  ax.set_ylabel("test bits/dim")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def _grid_panels(
  panels: Sequence[Sequence[np.ndarray]],
  titles: Sequence[Sequence[str]],
  path: str,
  scale: float = 1.0,
) -> None:
  """A rows x columns figure of images with titles."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  n_rows, n_cols = len(panels), len(panels[0])
  h, w = panels[0][0].shape[:2]
  fig, axes = plt.subplots(
    n_rows,
    n_cols,
    squeeze=False,
    dpi=100,
    figsize=(scale * n_cols * w / 100 + 0.2, scale * n_rows * (h / 100 + 0.3)),
  )
  for r in range(n_rows):
    for c in range(n_cols):
      ax = axes[r][c]
      ax.imshow(panels[r][c], interpolation="nearest")
      ax.set_title(titles[r][c], fontsize=8)
      ax.axis("off")
  fig.tight_layout(pad=0.3)
  fig.savefig(path)
  plt.close(fig)


def top_rows(grid: np.ndarray, n_rows: int, cell: int, pad: int = 1) -> np.ndarray:
  """The first n_rows rows of cells of an image_grid.make_grid grid."""
  return grid[: pad + n_rows * (cell + pad)]


# A run written before the one grid per side and epoch: a grid per temperature index i.
OLD_SAMPLE_GRID = "{side}_epoch_{{epoch}}_sample_{i}.png"


def sample_panels(run: str, side: str, cell: int, n_rows: int = 3) -> list[np.ndarray]:
  """The last epoch's samples of `side` at each of SHOWN_TEMPERATURES: its first draws as
  n_rows rows of ceil(sqrt(draws)) images (the layout of the old one-grid-per-temperature files,
  whose first n_rows rows an older run folder gives)."""
  indices = [TEMPERATURES.index(t) for t in SHOWN_TEMPERATURES]
  try:
    grid = _image(last_epoch_png(run, SAMPLE_GRID.format(side=side, epoch="{epoch}")))
  except ReportError:
    if not any(name.startswith(f"{side}_epoch_") for name in os.listdir(run)):
      raise
    return [
      top_rows(_image(last_epoch_png(run, OLD_SAMPLE_GRID.format(side=side, i=i))), n_rows, cell)
      for i in indices
    ]
  cells = image_grid.grid_cells(grid, cell)  # [temperatures, draws, cell, cell, 3]
  per_row = max(1, math.ceil(math.sqrt(cells.shape[1])))
  return [image_grid.make_grid(cells[i][: n_rows * per_row], n_cols=per_row) for i in indices]


def plot_samples(run: str, path: str, cell: int, n_rows: int = 3) -> None:
  panels, titles = [], []
  for side in sides_of(run):
    panels.append(sample_panels(run, side, cell, n_rows))
    titles.append([f"{side}, T = {t:g}" for t in SHOWN_TEMPERATURES])
  _grid_panels(panels, titles, path, scale=1.2)


def translation_grid(run: str, direction: str) -> np.ndarray:
  """The run's A2B/B2A grid: glow-train --inference's (best checkpoints) if written, else the
  last epoch's."""
  inferred = os.path.join(run, f"{direction}.png")
  return _image(
    inferred
    if os.path.isfile(inferred)
    else last_epoch_png(run, f"{direction}_epoch_{{epoch}}.png")
  )


def plot_translations(runs: Sequence[str], labels: Sequence[str], path: str) -> None:
  panels, titles = [], []
  for run, label in zip(runs, labels):
    panels.append([translation_grid(run, d) for d in ("A2B", "B2A")])
    titles.append(
      [
        f"{label}: A -> B (source, translation, truth)",
        f"{label}: B -> A (source, translation, truth)",
      ]
    )
  _grid_panels(panels, titles, path, scale=1.5)


def _hyperparameters(run: str) -> dict:
  with open(os.path.join(run, "train_A.txt")) as handle:
    return json.loads(handle.readline())


def image_side(run: str) -> int:
  """The side of a run's images, which is the cell of its sample grids: `config.json`'s model
  shape, else (a run from before config.json) the first log line's --crop_size or --image_size,
  else 32, the size of every set those runs could read without either flag."""
  path = os.path.join(run, "config.json")
  if os.path.isfile(path):
    with open(path) as handle:
      shape = json.load(handle).get("config", {}).get("model", {}).get("image_shape")
    if shape:
      return int(shape[0])
  hyper = _hyperparameters(run)
  for flag in ("crop_size", "image_size"):
    if int(hyper.get(flag) or 0) > 0:
      return int(hyper[flag])
  return 32


def pixel_baseline(run: str) -> float:
  """Test bits/dim of independent pixels fitted on the run's training images (its problem,
  channels and crop, read as glow-train read them)."""
  from glow_tf2.input import pipeline as input_pipeline  # pylint: disable=g-import-not-at-top
  from glow_tf2.input import problems  # pylint: disable=g-import-not-at-top
  from glow_tf2.serving import evaluation  # pylint: disable=g-import-not-at-top

  hyper = _hyperparameters(run)
  problem = problems.get_problem(
    hyper["problem"],
    data_dir=hyper.get("data_dir"),
    channels=hyper.get("channels"),
    crop_size=hyper.get("crop_size") or None,
  )
  images = {}
  for split in ("train", "test"):
    batches = input_pipeline.make_dataset(problem, split, 1000, shuffle=False, repeat=False)
    images[split] = np.concatenate([b["image_a"].numpy() for b in batches])
  return evaluation.independent_pixel_bits(
    images["train"], images["test"], hyper.get("n_bits_x", 8)
  )


def table(
  runs: Sequence[str], labels: Sequence[str], pixel_baselines: Sequence[float | None] | None = None
) -> str:
  """Markdown: one row per run of glow-eval's eval.json (test bits/dim with noise, code MSE,
  translation PSNR/SSIM of the model and the two baselines)."""
  rows = []
  paired = any(len(sides_of(run)) > 1 for run in runs)
  head = ["run", "train min", "test images", "bits/dim A"]
  if pixel_baselines:
    head.append("independent pixels")
  if paired:
    head += ["bits/dim B", "code MSE all / top"]
    for d in ("A->B", "B->A"):
      head += [f"{d} PSNR model / identity / NN", f"{d} SSIM model / identity / NN"]
  rows.append("| " + " | ".join(head) + " |")
  rows.append("|" + "---|" * len(head))
  for i, (run, label) in enumerate(zip(runs, labels)):
    path = os.path.join(run, "eval.json")
    if not os.path.isfile(path):
      raise ReportError(f"{path}: missing; run glow-eval --logdir={run} first")
    with open(path) as handle:
      report = json.load(handle)
    m = report["metrics"]
    minutes = test_curve(run, sides_of(run)[0])["minutes"][-1]
    bits = m["bits_per_dim"]
    cells = [
      label,
      f"{minutes:.1f}",
      str(report["n_test"]),
      f"{bits['a']['noise']['mean']:.3f} ± {bits['a']['noise']['stderr']:.3f}",
    ]
    if pixel_baselines:
      baseline = pixel_baselines[i]
      cells.append("-" if baseline is None else f"{baseline:.3f}")
    if paired:
      if "b" in bits:
        cells += [
          f"{bits['b']['noise']['mean']:.3f} ± {bits['b']['noise']['stderr']:.3f}",
          f"{m['code_mse']['all']:.3f} / {m['code_mse']['top']:.3f}",
        ]
        for d in ("a2b", "b2a"):
          t = m["translation"][d]
          methods = [t.get(k) for k in ("model", "identity", "nearest_neighbour")]
          cells.append(" / ".join(f"{x['psnr']:.2f}" if x else "-" for x in methods))
          cells.append(" / ".join(f"{x['ssim']:.3f}" if x else "-" for x in methods))
      else:
        cells += ["-"] * (len(head) - len(cells))
    rows.append("| " + " | ".join(cells) + " |")
  return "\n".join(rows) + "\n"


def _slug(label: str) -> str:
  """A label as a file-name part: "coupled 0.97" -> "coupled_0.97"."""
  return re.sub(r"[^A-Za-z0-9.]+", "_", label).strip("_")


def write_report(
  runs: Sequence[str],
  labels: Sequence[str],
  output_dir: str,
  name: str,
  title: str | None = None,
  pixel_baselines: bool = False,
  frontier_points: str | None = None,
  manipulate_label: int | None = None,
  quality_x: str = "minutes",
) -> dict[str, str]:
  """Writes the figures and the table; returns {what: path}.

  `manipulate_label`: the label whose direction the coupled runs' manipulation strips follow
  (default: the highest). `quality_x`: the sample-quality figure's x axis (`quality_curves`).
  """
  if len(labels) != len(runs):
    raise ReportError(f"--labels: {len(labels)} labels for {len(runs)} runs")
  for run in runs:
    if not sides_of(run):
      raise ReportError(f"{run}: no train_A.txt (not a glow-train run folder)")
  os.makedirs(output_dir, exist_ok=True)
  out = {
    k: os.path.join(output_dir, f"{name}_{k}.{ext}")
    for k, ext in (("curves", "png"), ("samples", "png"), ("translations", "png"), ("table", "md"))
  }
  plot_curves(runs, labels, out["curves"], title or name)
  quality_path = os.path.join(output_dir, f"{name}_sample_quality.png")
  if quality_curves.plot(
    runs, labels, quality_path, f"{title or name}: samples as judged", x=quality_x
  ):
    out["sample_quality"] = quality_path
  plot_samples(runs[0], out["samples"], cell=image_side(runs[0]))
  paired = [(r, l) for r, l in zip(runs, labels) if len(sides_of(r)) > 1]
  if paired:
    plot_translations(*zip(*paired), out["translations"])
  else:
    del out["translations"]
  if paired:
    # Imports TensorFlow: only a report of paired runs needs it (coupled runs' figures).
    from glow_tf2_tools import coupled_figures  # pylint: disable=g-import-not-at-top
    from glow_tf2_tools import latent_strips  # pylint: disable=g-import-not-at-top

    recorded = coupled_figures.read_points(frontier_points) if frontier_points else None
    if len(paired) + (len(recorded[0]) if recorded else 0) > 1:
      out["frontier"] = os.path.join(output_dir, f"{name}_frontier.png")
      coupled_figures.plot_frontier(
        *zip(*paired), out["frontier"], f"{title or name}: density against translation", recorded
      )
    for run, label in paired:
      if _hyperparameters(run).get("code_loss_type") == "coupled":
        prefix = os.path.join(output_dir, f"{name}_{_slug(label)}")
        figures = {
          **coupled_figures.write_coupled_figures(run, prefix),
          **latent_strips.write_latent_strips(run, prefix, label=manipulate_label),
        }
        out.update({f"{label} {what}": path for what, path in figures.items()})
  baselines = (
    [pixel_baseline(r) if len(sides_of(r)) == 1 else None for r in runs]
    if pixel_baselines
    else None
  )
  with open(out["table"], "w") as handle:
    handle.write(table(runs, labels, baselines))
  return out


FLAGS = flags.FLAGS
flags.DEFINE_list("runs", None, "Run folders (glow-train --logdir), compared in the figures.")
flags.DEFINE_list("labels", None, "A label per run (default: the folder names).")
flags.DEFINE_string("output_dir", "docs/results", "Where the PNGs and the table go.")
flags.DEFINE_string("name", None, "File name prefix (default: the first run's folder name).")
flags.DEFINE_string("title", None, "Title of the curves plot (default: --name).")
flags.DEFINE_bool(
  "pixel_baseline",
  False,
  "Add the test bits/dim of independent pixels fitted "
  "on each one-domain run's training images to the table.",
)


flags.DEFINE_string(
  "frontier_points",
  None,
  "A JSON list of recorded frontier points ({label, bits_a, bits_b, a2b, b2a}) of runs whose "
  "folders are gone, drawn with the --runs' own.",
)


flags.DEFINE_enum(
  "quality_x",
  "minutes",
  list(quality_curves.X_AXES),
  "x axis of the sample-quality figure: training minutes; CPU minutes of training, for runs "
  "that shared a machine (their wall minutes do not compare); or steps.",
)


flags.DEFINE_integer(
  "manipulate_label",
  None,
  "The label whose direction (mean code of its training images minus the others') the "
  "coupled runs' manipulation strips follow (default: the highest label).",
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.runs:
    sys.exit("glow-report: --runs is required")
  runs = [r.rstrip("/") for r in FLAGS.runs]
  labels = FLAGS.labels or [os.path.basename(r) for r in runs]
  try:
    out = write_report(
      runs,
      labels,
      FLAGS.output_dir,
      FLAGS.name or os.path.basename(runs[0]),
      FLAGS.title,
      FLAGS.pixel_baseline,
      FLAGS.frontier_points,
      FLAGS.manipulate_label,
      FLAGS.quality_x,
    )
  except (ReportError, OSError, ValueError) as e:
    sys.exit(f"glow-report: {e}")
  for what, path in out.items():
    print(f"glow-report: {what} -> {path}")
  with open(out["table"]) as handle:
    print(handle.read())


def run():
  app.run(main)


if __name__ == "__main__":
  run()
