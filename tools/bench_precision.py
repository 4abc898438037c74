"""Does mixed precision change what a model learns? Test bits/dim after a fixed training run.

  python tools/bench_precision.py --seeds=0,1,2 --train_steps=1500 --workdir=/tmp/precision

For every seed it trains the same small Glow with `glow-train` once per precision (the runs of one
seed alternate, so a change of the machine's load hits both alike) and reads the test bits/dim
of the final evaluation from the run's `test_A.txt`. A seed fixes the initial weights, the data
order and the dequantization noise, so the runs of one seed differ only in the arithmetic of the
coupling networks and priors: their difference, paired by seed, is the effect of the precision.
Its mean over seeds, with the standard error, is set against the target of docs/benchmarks.md
(within 0.02 bits/dim of float32); the spread of float32 across seeds says how large a difference the
training itself produces from a small change.

The model (mnist digits, 32x32x1, 2 levels, depth 4, width 64, batch 32, Adamax at the preset's
1e-3 after a 100-step warm-up) is small so that several seeds fit in a session of a 2-core CPU.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS


def define_flags() -> None:
  # Defined when run as a program only: glow-bench's module defines some of the same names, and
  # both are imported by one test process.
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (weights, data order, noise).")
  flags.DEFINE_list(
    "precisions", ["float32", "mixed_bfloat16"], "Precisions; the first is the base."
  )
  flags.DEFINE_integer("train_steps", 1500, "Training steps of every run.")
  flags.DEFINE_integer("n_test", 1000, "Test images of the final evaluation.")
  flags.DEFINE_string("workdir", "/tmp/glow_precision", "Run folders go here (reused if complete).")
  flags.DEFINE_string("json", None, "Write the results here.")
  flags.DEFINE_string("markdown", None, "Write the table here.")


STEPS_PER_EPOCH = 100  # --n_train=3200 at batch 32
MODEL_FLAGS = (
  "--problem=mnist_digits",
  "--n_levels=2",
  "--depth=4",
  "--width=64",
  "--n_batch_train=32",
  f"--n_train={32 * STEPS_PER_EPOCH}",
  "--epochs_warmup=1",
  "--epochs_full_sample=1000000",
  "--nopick_threads",  # speed is not measured here; the probe would only cost time
)


def final_test_bits(logdir: str, epoch: int) -> float | None:
  """bits_x of the evaluation at `epoch` in logdir/test_A.txt; None if the run has not got there."""
  path = os.path.join(logdir, "test_A.txt")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    for line in f:
      row = json.loads(line)
      if row.get("epoch") == epoch and "bits_x" in row:
        return float(row["bits_x"])
  return None


def train(logdir: str, precision: str, seed: int) -> tuple[float, float]:
  """Trains one run (or reads a finished one): (test bits/dim, seconds)."""
  epochs = FLAGS.train_steps // STEPS_PER_EPOCH
  done = final_test_bits(logdir, epochs)
  if done is not None:
    return done, float("nan")
  command = [
    os.path.join(os.path.dirname(sys.executable), "glow-train"),
    *MODEL_FLAGS,
    f"--logdir={logdir}",
    f"--precision={precision}",
    f"--seed={seed}",
    f"--train_steps={FLAGS.train_steps}",
    f"--epochs_full_valid={epochs}",
    f"--n_test={FLAGS.n_test}",
  ]
  start = time.perf_counter()
  result = subprocess.run(command, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  bits = final_test_bits(logdir, epochs)
  if result.returncode != 0 or bits is None:
    sys.exit(f"bench_precision: {' '.join(command)} failed:\n{result.stderr[-2000:]}")
  return bits, seconds


def summarise(bits: dict[str, dict[int, float]], base: str) -> dict:
  """Per precision: mean over seeds, and against `base` the differences paired by seed."""
  summary = {}
  for precision, by_seed in bits.items():
    row = {"mean": statistics.fmean(by_seed.values())}
    if len(by_seed) > 1:
      row["stdev_over_seeds"] = statistics.stdev(by_seed.values())
    if precision != base:
      diffs = [by_seed[s] - bits[base][s] for s in by_seed]
      row["paired_differences"] = diffs
      row["mean_difference"] = statistics.fmean(diffs)
      if len(diffs) > 1:
        row["standard_error"] = statistics.stdev(diffs) / len(diffs) ** 0.5
    summary[precision] = row
  return summary


def markdown(bits: dict[str, dict[int, float]], summary: dict, base: str) -> str:
  precisions = list(bits)
  lines = [
    "| seed | "
    + " | ".join(precisions)
    + " | "
    + " | ".join(f"{p} - {base}" for p in precisions[1:])
    + " |",
    "|---" * (2 * len(precisions)) + "|",
  ]
  for seed in bits[base]:
    cells = [f"{bits[p][seed]:.4f}" for p in precisions]
    cells += [f"{bits[p][seed] - bits[base][seed]:+.4f}" for p in precisions[1:]]
    lines.append(f"| {seed} | " + " | ".join(cells) + " |")
  means = [f"{summary[p]['mean']:.4f}" for p in precisions]
  diffs = [
    f"{summary[p]['mean_difference']:+.4f} (s.e. {summary[p].get('standard_error', float('nan')):.4f})"
    for p in precisions[1:]
  ]
  lines.append("| mean | " + " | ".join(means + diffs) + " |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  seeds = [int(s) for s in FLAGS.seeds]
  base = FLAGS.precisions[0]
  bits = {p: {} for p in FLAGS.precisions}
  for i, seed in enumerate(seeds):
    # Alternate which precision goes first, so a drift of the machine's speed is shared.
    order = FLAGS.precisions if i % 2 == 0 else FLAGS.precisions[::-1]
    for precision in order:
      logdir = os.path.join(FLAGS.workdir, f"{precision}_seed{seed}")
      value, seconds = train(logdir, precision, seed)
      bits[precision][seed] = value
      print(f"seed {seed} {precision}: test bits/dim {value:.4f} ({seconds:.0f} s)", flush=True)
  summary = summarise(bits, base)
  table = markdown(bits, summary, base)
  print(table)
  if FLAGS.markdown:
    with open(FLAGS.markdown, "w") as f:
      f.write(table)
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(
        {
          "train_steps": FLAGS.train_steps,
          "model_flags": MODEL_FLAGS,
          "bits": bits,
          "summary": summary,
        },
        f,
        indent=1,
      )


if __name__ == "__main__":
  define_flags()
  app.run(main)
