"""tools/bench_precision.py: reading a run's final test bits/dim, and the paired summary."""

import json
import math

from glow_tf2_tools import bench_precision


def test_final_test_bits_reads_the_evaluation_of_that_epoch(tmp_path):
  rows = [
    {"verbose": False, "problem": "mnist_digits"},  # the hyperparameter line comes first
    {"epoch": 5, "bits_x": "3.5000"},
    {"epoch": 15, "bits_x": "2.6583"},
  ]
  (tmp_path / "test_A.txt").write_text("".join(json.dumps(r) + "\n" for r in rows))
  assert bench_precision.final_test_bits(str(tmp_path), 15) == 2.6583
  assert bench_precision.final_test_bits(str(tmp_path), 10) is None  # not got there
  assert bench_precision.final_test_bits(str(tmp_path / "missing"), 15) is None


def test_summary_pairs_the_runs_by_seed():
  bits = {
    "float32": {0: 2.60, 1: 2.70, 2: 2.50},
    "mixed_bfloat16": {0: 2.61, 1: 2.68, 2: 2.53},
  }
  summary = bench_precision.summarise(bits, "float32")
  diffs = [0.01, -0.02, 0.03]
  got = summary["mixed_bfloat16"]
  assert all(math.isclose(a, b, abs_tol=1e-12) for a, b in zip(got["paired_differences"], diffs))
  assert math.isclose(got["mean_difference"], 0.02 / 3, abs_tol=1e-12)
  mean = 0.02 / 3
  stdev = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
  assert math.isclose(got["standard_error"], stdev / math.sqrt(3), rel_tol=1e-9)
  assert math.isclose(summary["float32"]["mean"], 2.6, rel_tol=1e-12)
  assert math.isclose(summary["float32"]["stdev_over_seeds"], 0.1, rel_tol=1e-9)
  assert "mean_difference" not in summary["float32"]
  table = bench_precision.markdown(bits, summary, "float32")
  assert "| 1 | 2.7000 | 2.6800 | -0.0200 |" in table
  assert "+0.0067 (s.e. " in table
