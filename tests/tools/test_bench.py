"""glow-bench's arithmetic and output (its timings are figures to read, not to assert)."""

import json
import sys

import numpy as np
import tensorflow as tf

import glow_tf2
from glow_tf2_tools import bench
from glow_tf2_tools import bench_configs
from glow_tf2_tools import bench_peak
from tests import helpers


def _graph_flops(config) -> float:
  """2 x multiply-adds of every Conv2D and MatMul in the traced encoding of one image."""
  glow = glow_tf2.Glow(config, seed=0)
  fn = tf.function(lambda x: glow.encode(x)[0])
  graph = fn.get_concrete_function(tf.TensorSpec((1,) + config.image_shape, tf.float32)).graph
  total = 0.0
  for op in helpers.operations(graph):
    if op.type == "Conv2D":
      kh, kw, cin, _ = op.inputs[1].shape
      total += 2.0 * np.prod(op.outputs[0].shape) * kh * kw * cin
    # Per-pixel matmuls and the edge-bias channel's (constant patches), not the LU assembly.
    elif op.type == "MatMul" and op.inputs[0].op.type in ("Reshape", "Const"):
      m, k = op.inputs[0].shape
      total += 2.0 * m * k * op.outputs[0].shape[1]
  return total


def test_flop_formula_matches_the_traced_graph():
  for name in ("a", "b"):
    config = bench_configs.CONFIGS[name].glow_config()
    np.testing.assert_allclose(
      bench_configs.forward_flops_per_image(config), _graph_flops(config), rtol=1e-6
    )


def test_median_and_iqr():
  stats = bench.median_and_iqr([0.001, 0.002, 0.003, 0.004, 0.100])
  assert stats == {"median_ms": 3.0, "iqr_ms": 2.0, "n": 5}


# glow-bench's own start as a process, its --config=a shrunk to the smallest Glow with every
# kind of layer (2 levels of 1 step): the smoke run checks keys and ratios, not the timings, and
# its cost is tracing the steps and codecs of every contender, which scales with the layers.
SMOKE_DRIVER = """
import sys
from glow_tf2_tools import bench
from glow_tf2_tools.bench_configs import CONFIGS, BenchConfig
CONFIGS["a"] = BenchConfig(image_size=8, n_levels=2, depth=1, width=8, batch=4)
sys.argv = ["glow-bench", *sys.argv[1:]]
bench.run()
"""


def test_smoke_run_writes_every_documented_key(tmp_path):
  out = tmp_path / "bench.json"
  result = helpers.run_python(
    [
      sys.executable,
      "-c",
      SMOKE_DRIVER,
      "--config=a",
      "--compare_tfp",
      "--reps=2",
      "--warmup=1",
      f"--json={out}",
      f"--markdown={tmp_path / 'bench.md'}",
      "--intra_op_threads=1",
      "--inter_op_threads=2",
      "--branches=2",
      "--precision=float32,mixed_bfloat16",
    ],
    timeout=900,  # ~5 min under this session's load (7 agents, 2 cores)
  )
  assert result.returncode == 0, result.stderr[-2000:]
  data = json.loads(out.read_text())
  for key in (
    "train_step_ms",
    "tfp_train_step_ms",
    "joint_train_step_ms",
    "encode_images_per_sec",
    "decode_images_per_sec",
    "train_step_mixed_bfloat16_ms",
    "encode_mixed_bfloat16_images_per_sec",
    "decode_mixed_bfloat16_images_per_sec",
  ):
    assert data[key] > 0, key
  np.testing.assert_allclose(
    data["train_step_mixed_bfloat16_speedup"],
    data["train_step_ms"] / data["train_step_mixed_bfloat16_ms"],
  )
  assert data["threads"] == {"intra_op": 1, "inter_op": 2, "branches": 2}
  assert data["measured_peak"]["fp32_gflops_per_s"] > 1.0
  assert "torch" in data["torch"]
  table = (tmp_path / "bench.md").read_text()
  assert "| train_step |" in table and "branches 2" in table and "Measured FMA peak" in table
  assert "| train_step_mixed_bfloat16 |" in table and "PyTorch contender: not timed" in table


def test_paper_config_is_the_original_model():
  assert bench_configs.CONFIGS["paper"] == bench_configs.BenchConfig(depth=32, width=512, batch=64)
  config = bench_configs.CONFIGS["paper"].glow_config()
  assert (config.depth, config.width, config.n_levels, config.image_shape) == (
    32,
    512,
    3,
    (32, 32, 3),
  )


def test_bad_precision_is_named():
  result = helpers.run_python(
    [sys.executable, "-m", "glow_tf2_tools.bench", "--config=a", "--precision=float32,bf16"],
    timeout=120,
  )
  assert result.returncode != 0 and "'bf16'" in result.stderr


def test_fma_peak_counts_flops_of_the_loop():
  """The probe compiles and runs here, on the ISA the CPU has, within what a core can do."""
  peak = bench_peak.fma_peak(threads=1, iters=2_000_000)
  assert peak["measured"], peak  # gcc is part of this machine's toolchain
  flags = bench_peak._cpu_flags()
  assert peak["isa"].startswith("avx512" if "avx512f" in flags else "avx2")
  assert peak["fp32_gflops_per_s"] > 1.0
  # A 2-core machine at 2-5 GHz: at most 2 FMA ports x 16 lanes x 2 flops x 5 GHz per core.
  assert peak["fp32_gflops_per_s"] < 2 * 16 * 2 * 5.0 * 1.2
  assert ("bf16_gflops_per_s" in peak) == ("avx512_bf16" in flags)


def test_fma_peak_without_a_compiler_says_not_measured():
  peak = bench_peak.fma_peak(cc="no-such-compiler-h4")
  assert peak == {"measured": False, "why": "no C compiler 'no-such-compiler-h4' on PATH"}
