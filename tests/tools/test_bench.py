"""glow-bench's arithmetic and output (its timings are figures to read, not to assert)."""

import json
import subprocess
import sys

import numpy as np
import tensorflow as tf

import glow_tf2
from glow_tf2_tools import bench


def _graph_flops(config) -> float:
  """2 x multiply-adds of every Conv2D and MatMul in the traced encoding of one image."""
  glow = glow_tf2.Glow(config, seed=0)
  fn = tf.function(lambda x: glow.encode(x)[0])
  graph = fn.get_concrete_function(tf.TensorSpec((1,) + config.image_shape, tf.float32)).graph
  total = 0.0
  for op in graph.get_operations():
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
    config = bench.CONFIGS[name].glow_config()
    np.testing.assert_allclose(
      bench.forward_flops_per_image(config), _graph_flops(config), rtol=1e-6
    )


def test_median_and_iqr():
  stats = bench.median_and_iqr([0.001, 0.002, 0.003, 0.004, 0.100])
  assert stats == {"median_ms": 3.0, "iqr_ms": 2.0, "n": 5}


def test_smoke_run_writes_every_documented_key(tmp_path):
  out = tmp_path / "bench.json"
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "glow_tf2_tools.bench",
      "--config=a",
      "--compare_tfp",
      "--reps=2",
      "--warmup=1",
      f"--json={out}",
      f"--markdown={tmp_path / 'bench.md'}",
      "--intra_op_threads=1",
      "--inter_op_threads=2",
      "--branches=2",
    ],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  data = json.loads(out.read_text())
  for key in (
    "train_step_ms",
    "tfp_train_step_ms",
    "joint_train_step_ms",
    "encode_images_per_sec",
    "decode_images_per_sec",
  ):
    assert data[key] > 0, key
  assert data["threads"] == {"intra_op": 1, "inter_op": 2, "branches": 2}
  assert data["measured_peak"]["gflops_per_s"] > 1.0
  table = (tmp_path / "bench.md").read_text()
  assert "| train_step |" in table and "branches 2" in table and "Measured fp32 peak" in table
