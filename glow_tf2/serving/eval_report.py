"""glow-eval's report as files and text: the JSON report, the translation figure, the table.

The report is what `evaluation.evaluate` returns; these functions only present it.
"""

import json
import os
from typing import Any

import numpy as np

from glow_tf2 import image_grid
from glow_tf2.serving import sample_quality


def _jsonable(report):
  return {k: v for k, v in report.items() if k not in ("figure_images", "sample_images")}


def write_report(report: dict[str, Any], path: str) -> None:
  """The report as JSON (without the figure images), written atomically."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(_jsonable(report), f, indent=2, default=_to_builtin)
    f.write("\n")
  os.replace(tmp, path)


def _to_builtin(value):
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (np.floating,)):
    return float(value)
  if isinstance(value, (tuple, np.ndarray)):
    return list(value)
  raise TypeError(f"not JSON serializable: {type(value)}")


def save_figure(report: dict[str, Any], path: str) -> str | None:
  """PNG of the translations: per direction, rows input / translation / true partner.

  A coupled run has, between the translation (T = 0) and the partner, a row per draw at the
  report's temperature (at most `FIGURE_DRAWS`). A -> B comes first, then B -> A, separated by
  a blank row. Returns the path, or None when the
  report has no translations (a single model).
  """
  figure = report.get("figure_images") or {}
  if not figure:
    return None
  groups = [figure[direction] for direction in ("a2b", "b2a") if direction in figure]
  image_grid.save_row_groups(path, groups)
  return path


def format_table(report: dict[str, Any]) -> str:
  """A plain-text table of the metrics, for the terminal."""
  metrics = report["metrics"]
  lines = [f"test images: {report['n_test']}"]
  for d, bits in metrics["bits_per_dim"].items():
    lines.append(
      f"bits/dim {d.upper()}: {bits['noise']['mean']:.4f} +- "
      f"{bits['noise']['stderr']:.4f} (noise)   {bits['mid_bin']['mean']:.4f} +- "
      f"{bits['mid_bin']['stderr']:.4f} (mid-bin)"
    )
  if "code_mse" in metrics:
    lines.append(
      f"code MSE: all dims {metrics['code_mse']['all']:.5f}   "
      f"top block {metrics['code_mse']['top']:.5f}"
    )
  if "code_mse_train" in metrics:
    lines.append(
      f"code MSE on training pairs: all dims {metrics['code_mse_train']['all']:.5f}   "
      f"top block {metrics['code_mse_train']['top']:.5f}"
    )
  if "translation" in metrics:
    header = f"{'translation':<20}" + "".join(
      f"{name:>10}" for _ in ("a2b", "b2a") for name in ("MSE", "PSNR", "SSIM")
    )
    lines.append("")
    lines.append(f"{'':<20}{'A -> B':^30}{'B -> A':^30}")
    lines.append(header)
    for method in ("model", "identity", "nearest_neighbour"):
      cells = []
      for direction in ("a2b", "b2a"):
        m = metrics["translation"][direction].get(method)
        cells += (
          [f"{m['mse']:10.5f}", f"{m['psnr']:10.2f}", f"{m['ssim']:10.4f}"]
          if m
          else [f"{'-':>10}"] * 3
        )
      lines.append(f"{method.replace('_', ' '):<20}" + "".join(cells))
  if "coupled_bits_per_dim" in metrics:
    lines.append("")
    for key, label in (
      ("joint", "joint (pair)"),
      ("b_given_a", "B given A"),
      ("a_given_b", "A given B"),
    ):
      bits = metrics["coupled_bits_per_dim"][key]
      lines.append(
        f"bits/dim {label}: {bits['noise']['mean']:.4f} +- {bits['noise']['stderr']:.4f} "
        f"(noise)   {bits['mid_bin']['mean']:.4f} +- {bits['mid_bin']['stderr']:.4f} (mid-bin)"
      )
  if "translation_sampled" in metrics:
    sampled = metrics["translation_sampled"]
    lines.append(
      f"translation at T = {sampled['temperature']:g}, {sampled['draws']} draws per input:"
    )
    for direction, label in (("a2b", "A -> B"), ("b2a", "B -> A")):
      m = sampled[direction]
      lines.append(
        f"  {label}: best PSNR {m['psnr_best']:.2f}   mean PSNR {m['psnr_mean']:.2f}   "
        f"per-pixel spread {m['spread']:.5f}"
      )
  lines += sample_quality.format_table(metrics)
  return "\n".join(lines)
