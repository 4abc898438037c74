"""Benchmark of the training step: gradient checkpointing (memory, time) and joint vs single model.

  python tools/bench_train.py          # the paper's model: 32x32x3, L=3, K=32, width 512, batch 64
  python tools/bench_train.py --batch=16 --steps=3  # a quicker look

Every variant runs in a fresh process on synthetic uint8 images, so its peak resident memory
(VmHWM) is its own. `--alternate` instead times the variants in one process, one step of each in
turn, which keeps their ratio meaningful on a machine whose load changes. Reported per variant: seconds per step (median of the timed steps, after one
warm-up step), peak RSS, and peak RSS above the RSS before the first step (what training adds).
"""

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags


@dataclasses.dataclass(frozen=True)
class _Problem:
  name: str
  image_shape: tuple
  paired: bool
  n_classes: int = 0
  n_train: int = 50000
  n_test: int = 1000


def _rss_kb(field: str) -> int:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1])
  return 0


def build(args, variant: str):
  """A Trainer for one variant (single | single_gc | joint | joint_gc) on synthetic images."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from glow_tf2 import config as tc  # pylint: disable=g-import-not-at-top
  from glow_tf2.train import loop as trainer_lib  # pylint: disable=g-import-not-at-top

  strategy = tf.distribute.get_strategy()

  shape = (args.image_size, args.image_size, 3)
  rng = np.random.default_rng(0)
  images = {
    "image_a": rng.integers(0, 256, (args.batch,) + shape, dtype=np.uint8),
    "image_b": rng.integers(0, 256, (args.batch,) + shape, dtype=np.uint8),
    "label": np.zeros([args.batch], np.int32),
  }

  def make_dataset(problem, split, batch_size, *, shuffle, repeat, dal, seed, input_context=None):
    del problem, split, shuffle, dal, seed, input_context
    ds = tf.data.Dataset.from_tensors({k: v[:batch_size] for k, v in images.items()})
    return ds.repeat() if repeat else ds

  joint = variant.startswith("joint")
  config = tc.build(
    {
      "model.n_levels": args.n_levels,
      "model.depth": args.depth,
      "model.width": args.width,
      "model.coupling": "affine",
      "gradient_checkpointing": variant.endswith("_gc"),
      "loss.joint_train": joint,
      "data.problem": "synthetic",
      "logdir": "/tmp/bench_train_unused",
      "n_batch_train": args.batch,
      "n_batch_init": args.batch,
      "jit_compile": args.jit_compile,
    }
  )
  problem = _Problem("synthetic", shape, paired=joint)
  trainer = trainer_lib.Trainer(config, problem, strategy, make_dataset)
  trainer.initialize()
  return trainer, trainer.train_iterator()


def alternate(args) -> dict:
  """Seconds per step of several variants in ONE process, timed in alternation.

  On a shared machine the load changes over minutes; alternating the variants step by step
  exposes them to the same load, so their ratio is meaningful even when the absolute times are
  not. (Peak memory needs one process per variant: see `child`.)
  """
  variants = args.variants.split(",")
  runs = {v: build(args, v) for v in variants}
  for trainer, iterator in runs.values():
    trainer.train_step(iterator)  # trace + first run
  times = {v: [] for v in variants}
  cpu = {v: [] for v in variants}
  for _ in range(args.steps):
    for v, (trainer, iterator) in runs.items():
      start, start_cpu = time.perf_counter(), time.process_time()
      trainer.train_step(iterator)
      times[v].append(time.perf_counter() - start)
      cpu[v].append(time.process_time() - start_cpu)
  # CPU seconds per wall second: how many cores a step keeps busy on average. On an idle
  # machine a joint step can be at best (its CPU time / cores) long, so with a single step
  # already at utilisation u the joint step costs at least about u x the single one.
  return {
    v: (statistics.median(times[v]), statistics.median(cpu[v]) / statistics.median(times[v]))
    for v in variants
  }


def child(args) -> dict:
  """One variant in this (fresh) process: time per step and peak resident memory."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  trainer, iterator = build(args, args.child)
  rss_before = _rss_kb("VmRSS")
  trainer.train_step(iterator)  # trace + first run
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    trainer.train_step(iterator)
    times.append(time.perf_counter() - start)
  peak = _rss_kb("VmHWM")
  return {
    "sec_per_step": statistics.median(times),
    "peak_rss_mb": peak / 1024,
    "added_rss_mb": (peak - rss_before) / 1024,
    "n_params": sum(
      int(np.prod(v.shape)) for s in trainer.sides for v in s.model.trainable_variables
    ),
  }


def define_flags() -> None:
  flags.DEFINE_integer("image_size", 32, "Side of the (random) square images.")
  flags.DEFINE_integer("n_levels", 3, "Levels L of each Glow.")
  flags.DEFINE_integer("depth", 32, "Steps of flow K per level.")
  flags.DEFINE_integer("width", 512, "Channels of the coupling networks.")
  flags.DEFINE_integer("batch", 64, "Images per step.")
  flags.DEFINE_integer("steps", 3, "Timed steps per variant.")
  flags.DEFINE_boolean("jit_compile", False, "Compile the steps with XLA.")
  flags.DEFINE_integer("intra_op_threads", 0, "TensorFlow's threads per op (0 = its default).")
  flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow's ops at once (0 = its default).")
  flags.DEFINE_string(
    "variants",
    "single,single_gc,joint",
    "Comma-separated subset of single, single_gc, joint, joint_gc.",
  )
  flags.DEFINE_boolean(
    "alternate", False, "Time the variants in one process, alternating steps (no memory figures)."
  )
  flags.DEFINE_string("child", None, "Internal: measure this one variant in this process.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  args = flags.FLAGS
  from glow_tf2.train import distribute  # pylint: disable=g-import-not-at-top

  distribute.configure_threads(args.intra_op_threads, args.inter_op_threads)
  if args.child:
    print("RESULT " + json.dumps(child(args)))
    return
  if args.alternate:
    measured = alternate(args)
    for v, (t, busy) in measured.items():
      print(f"{v:10s} {t:8.3f} s/step (alternating), {busy:.2f} cores busy on average")
    for a, b in (("single", "single_gc"), ("single", "joint"), ("single_gc", "joint_gc")):
      if a in measured and b in measured:
        print(f"{b} / {a}: {measured[b][0] / measured[a][0]:.2f}x")
    return
  results = {}
  for variant in args.variants.split(","):
    command = [sys.executable, __file__, f"--child={variant}"] + [
      f"--{k}={getattr(args, k)}"
      for k in (
        "image_size",
        "n_levels",
        "depth",
        "width",
        "batch",
        "steps",
        "intra_op_threads",
        "inter_op_threads",
      )
    ]
    if args.jit_compile:
      command.append("--jit_compile")
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
      sys.exit(f"{variant} failed:\n{out.stderr[-3000:]}")
    results[variant] = json.loads(out.stdout.split("RESULT ", 1)[1])
    r = results[variant]
    print(
      f"{variant:10s} {r['sec_per_step']:8.3f} s/step  peak RSS {r['peak_rss_mb']:8.0f} MB  "
      f"added {r['added_rss_mb']:8.0f} MB  params {r['n_params']}",
      flush=True,
    )
  if "single" in results and "single_gc" in results:
    s, g = results["single"], results["single_gc"]
    print(
      f"gradient checkpointing: peak RSS {g['peak_rss_mb'] / s['peak_rss_mb']:.0%} of without "
      f"(added {g['added_rss_mb'] / max(s['added_rss_mb'], 1):.0%}), "
      f"time {g['sec_per_step'] / s['sec_per_step']:.2f}x"
    )
  for single, joint in (("single", "joint"), ("single_gc", "joint_gc")):
    if single in results and joint in results:
      ratio = results[joint]["sec_per_step"] / results[single]["sec_per_step"]
      print(f"{joint} step / {single} step: {ratio:.2f}x")


if __name__ == "__main__":
  define_flags()
  app.run(main)
