"""Benchmark of the data layer: TFRecord writing and tf.data pipeline throughput at 32x32.

  .venv/bin/python -m glow_tf2_tools.bench_data [--examples=20000] [--batch=64] [--workdir=DIR]

Writes `--examples` paired 32x32x3 MNIST examples (mnist problem: A and B per example) and as
many unpaired 32x32x3 images with the library's atomic writer, then reads them back through
`make_dataset` (shuffle + repeat, dal 0 and 1). Reports examples/s; a paired example holds two
images.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from glow_tf2.input import embedded
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.input import records
from glow_tf2.input import writer


def _bench_write(root, records_fn, n, paired):
  spec = writer.DatasetSpec(
    splits={
      "train": writer.SplitData(n, records_fn(n), 16),
      "validation": writer.SplitData(n // 10, records_fn(n // 10), 2),
    },
    res_log2s=(records.resolution_log2(32),),
    meta={"paired": paired, "n_classes": 10},
  )
  start = time.perf_counter()
  writer.write_set(root, spec, overwrite=True)
  return (n + n // 10) / (time.perf_counter() - start)


def _bench_read(problem, batch, dal, n_examples, warmup=20):
  ds = input_pipeline.make_dataset(problem, "train", batch, dal=dal, seed=0)
  it = iter(ds)
  for _ in range(warmup):
    next(it)
  steps = max(1, n_examples // batch)
  start = time.perf_counter()
  for _ in range(steps):
    out = next(it)
  out["image_a"].numpy()
  return steps * batch / (time.perf_counter() - start)


def define_flags() -> None:
  flags.DEFINE_integer("examples", 20000, "Examples written and read per measurement.")
  flags.DEFINE_integer("batch", 64, "Per-replica batch size read.")
  flags.DEFINE_string("workdir", None, "Scratch folder (default: a temporary one, removed).")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  args = flags.FLAGS

  work = args.workdir or tempfile.mkdtemp(prefix="bench_data_")
  try:
    digits = embedded.mnist_splits()["train"][0]
    a_all, b_all = embedded.mnist_pairs(digits, 3)
    labels = embedded.mnist_splits()["train"][1]
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (1000, 32, 32, 3), dtype=np.uint8)

    def pairs(n):
      idx = np.arange(n) % len(a_all)
      return (records.encode_pair(a_all[i], b_all[i], int(labels[i])) for i in idx)

    def singles(n):
      return (records.encode_example(photos[i % len(photos)], i % 10) for i in range(n))

    paired_root, single_root = os.path.join(work, "paired"), os.path.join(work, "single")
    results = {
      "write paired 32x32x3 (examples/s)": _bench_write(paired_root, pairs, args.examples, True),
      "write unpaired 32x32x3 (images/s)": _bench_write(single_root, singles, args.examples, False),
    }
    paired = problems.get_problem(paired_root, verify=False)
    single = problems.get_problem(single_root, verify=False)
    for dal in (0, 1):
      results[f"read paired, dal={dal} (examples/s)"] = _bench_read(
        paired, args.batch, dal, args.examples
      )
      results[f"read unpaired, dal={dal} (images/s)"] = _bench_read(
        single, args.batch, dal, args.examples
      )
    print(f"bench_data: {args.examples} examples, batch {args.batch}, {os.cpu_count()} CPUs")
    for name, value in results.items():
      print(f"  {name:40s} {value:10,.0f}")
  finally:
    if not args.workdir:
      shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  define_flags()
  app.run(main)
