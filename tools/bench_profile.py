"""Profiles of one glow_tf2 training step, each run in a fresh child process of glow-bench.

`profile_probe` traces gradient steps and shares out their op time by op type (where the time
goes); `memory_probe` runs a few steps and reads the process's peak resident memory (with or
without gradient checkpointing). A fresh process each: peak RSS is the whole process's
high-water mark, and the trace runs in graph mode, which TensorFlow enters only before its first
op.
"""

from collections.abc import Callable
import resource
import time

import numpy as np

from glow_tf2_tools import bench_configs
from glow_tf2_tools import bench_contenders


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _peak_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory_probe(spec: dict, report: Callable[[dict], None] | None = None) -> dict:
  """Runs in a child process: a few training steps, then this process's peak RSS.

  spec: "bench" (BenchConfig fields), "checkpointing", "steps"; optionally "steady_seconds":
  stop after the second step once the steps after the first have taken that long (a big cell
  gets its one or two steady steps, a small one all of "steps"). `report` is called after the
  build and after every step with what is known so far, so that a parent that kills this
  process at a memory cap or a time limit still has the first step's figures (glow-bench
  --memory_table streams them as JSON lines). CPU seconds are the process's user + system time:
  on a shared machine they, not the wall times, compare between cells.
  """
  report = report or (lambda event: None)
  bench = bench_configs.BenchConfig(**spec["bench"])
  rss_before = _peak_mib()
  start, cpu_start = time.perf_counter(), _cpu_seconds()
  step, _ = bench_contenders.make_train_step(bench, checkpointing=spec["checkpointing"])
  rss_built = _peak_mib()
  report({"event": "built", "seconds": time.perf_counter() - start, "peak_rss_mib": rss_built})
  times, cpus = [], []
  first = {}
  for _ in range(spec["steps"]):
    t, c = time.perf_counter(), _cpu_seconds()
    step()
    times.append(time.perf_counter() - t)
    cpus.append(_cpu_seconds() - c)
    if not first:  # build (ActNorm init included), trace and the first run: what a user waits for
      first = {
        "first_step_s": time.perf_counter() - start,
        "first_step_cpu_s": _cpu_seconds() - cpu_start,
      }
    result = {
      "peak_rss_mib": _peak_mib(),
      "rss_after_build_mib": rss_built,
      "rss_after_import_mib": rss_before,
      "step_ms_last": 1000.0 * float(np.median(times[1:] or times)),
      **first,
      "steps": len(times),
    }
    if len(times) > 1:
      result["steady_step_s"] = float(np.median(times[1:]))
      result["steady_cpu_s_per_step"] = float(np.median(cpus[1:]))
    report({"event": "step", **result})
    if len(times) > 1 and sum(times[1:]) >= spec.get("steady_seconds", float("inf")):
      break
  return result


def profile_probe(spec: dict) -> dict:
  """Runs in a child process: op time by op type of traced gradient steps (graph mode).

  Op times add up across the two cores, so shares, not sums, are what to read.
  """
  import collections

  import tensorflow as tf

  import glow_tf2
  from glow_tf2_tools import sample_images

  tf.compat.v1.disable_eager_execution()
  bench = bench_configs.BenchConfig(**spec["bench"])
  images = sample_images.real_images(bench.batch, bench.image_size, bench.channels)
  glow = glow_tf2.Glow(bench.glow_config(), seed=0)
  feed = tf.compat.v1.placeholder(tf.uint8, images.shape)
  loss = tf.reduce_mean(glow_tf2.bits_per_dim(glow, feed))
  grads = tf.gradients(loss, glow.trainable_variables)
  with tf.compat.v1.Session() as session:
    session.run(tf.compat.v1.global_variables_initializer())
    for _ in range(3):
      session.run(grads, {feed: images})
    by_op = collections.Counter()
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    for _ in range(spec["steps"]):
      metadata = tf.compat.v1.RunMetadata()
      session.run(grads, {feed: images}, options=options, run_metadata=metadata)
      for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
          label = node.timeline_label
          op = label.split("=", 1)[-1].split("(")[0].strip() if "=" in label else node.node_name
          by_op[op] += node.all_end_rel_micros
  total = sum(by_op.values())
  return {op: us / total for op, us in by_op.most_common(15)}
