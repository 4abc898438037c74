"""glow-bench's results on paper: the markdown table of one run, the plot of its sweep."""

import numpy as np


def write_plot(rows: list[dict], path: str) -> None:
  """ms/step against GFLOP per step for the sweep; the line is cost proportional to work."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
  gflop = np.array([r["gflop"] for r in rows])
  ms = np.array([r["median_ms"] for r in rows])
  ax.loglog(gflop, ms, "o")
  for r in rows:
    ax.annotate(
      f"K{r['depth']} W{r['width']} {r['image_size']}px B{r['batch']}",
      (r["gflop"], r["median_ms"]),
      fontsize=7,
      xytext=(3, 3),
      textcoords="offset points",
    )
  ref = np.linspace(gflop.min(), gflop.max(), 10)
  ax.loglog(ref, ms[0] * ref / gflop[0], "--", color="grey", label="proportional to FLOPs")
  ax.set_xlabel("GFLOP per training step")
  ax.set_ylabel("ms per training step (median)")
  ax.set_title("glow_tf2 training step cost vs work")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path)


def markdown_table(results: dict) -> str:
  threads = results["threads"]
  lines = [
    f"glow-bench, config {results['config_name']} ({results['config']}), "
    f"{results['date']}, {results['machine']}; TensorFlow threads per op "
    f"{threads['intra_op'] or 'default'}, ops at once {threads['inter_op'] or 'default'}, "
    f"branches {threads['branches']}; load average {results['load_average_1min']:.1f} at the start",
    "",
  ]
  peak = results.get("measured_peak")
  if peak and peak["measured"]:
    bf16 = peak.get("bf16_gflops_per_s")
    lines += [
      f"Measured FMA peak ({peak['isa']}, {peak['threads']} threads of independent FMA chains): "
      f"fp32 {peak['fp32_gflops_per_s']:.0f} GFLOP/s"
      + (f", bf16 dot products {bf16:.0f} GFLOP/s" if bf16 else "")
      + f" (nominal fp32 {results['peak_gflops']:.0f}).",
      "",
    ]
  elif peak:
    lines += [f"FMA peak not measured: {peak['why']}.", ""]
  lines += [f"PyTorch contender: {results['torch']}.", ""]
  lines += ["| measurement | median | IQR | note |", "|---|---|---|---|"]
  for key, row in results["timings"].items():
    lines.append(
      f"| {key} | {row['median_ms']:.1f} ms | {row['iqr_ms']:.1f} ms | {row.get('note', '')} |"
    )
  for key in sorted(k for k in results if k.endswith("_images_per_sec")):
    lines.append(f"| {key} | {results[key]:.0f} images/s | | batch 64 |")
  for key in (
    "tfp_speedup",
    "torch_speedup",
    "torch_encode_speedup",
    "torch_decode_speedup",
    "joint_over_single",
  ):
    if key in results:
      lines.append(f"| {key} | {results[key]:.2f}x | | ratio of medians, same run |")
  if "memory" in results:
    for key, row in results["memory"].items():
      lines.append(
        f"| peak RSS, {key} | {row['peak_rss_mib']:.0f} MiB | | "
        f"after build {row['rss_after_build_mib']:.0f} MiB, {row['step_ms_last']:.0f} ms/step |"
      )
  if "op_time_share" in results:
    lines += [
      "",
      "Where a training step's op time goes (forward + backward, by op type):",
      "",
      "| op | share |",
      "|---|---|",
    ]
    lines += [f"| {op} | {100 * share:.1f}% |" for op, share in results["op_time_share"].items()]
  if "sweep" in results:
    lines += [
      "",
      "| depth | width | size | batch | ms/step | GFLOP/step | GFLOP/s | % of nominal peak |",
      "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["sweep"]:
      lines.append(
        f"| {r['depth']} | {r['width']} | {r['image_size']} | {r['batch']} | "
        f"{r['median_ms']:.1f} | {r['gflop']:.2f} | {r['gflops_per_s']:.1f} | "
        f"{100 * r['gflops_per_s'] / results['peak_gflops']:.1f} |"
      )
  return "\n".join(lines) + "\n"
