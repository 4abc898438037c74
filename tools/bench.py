"""glow-bench: speed and memory of glow_tf2's Glow beside tfp.bijectors.Glow and a PyTorch Glow.

These machines are shared and noisy, so every comparison is measured in one process, alternating
the contenders rep by rep, and reported as a ratio of medians. Absolute times are printed too,
with their spread (interquartile range), but the ratio is the figure that counts.

  glow-bench --config=b --compare_tfp --json=bench.json
  glow-bench --config=b --compare_torch --joint=false
  glow-bench --config=b --memory --sweep --markdown=bench.md --plot=bench.png

What is timed (after warm-up, `tf.function`, --precision's first entry):
- train_step_ms: preprocess with noise, bits/dim, gradients, Adam update, one model;
- joint_train_step_ms: the same for two models plus pix2pix-flow's code loss (code_last);
- tfp_train_step_ms: tfp.bijectors.Glow at the closest settings (affine coupling, LU 1x1 conv,
  same levels, depth and hidden width), the same loss and optimizer;
- encode / decode images per second at batch 64;
- with --xla the step again with `jit_compile=True`;
- with --memory the peak resident memory of a child process training with and without
  `--gradient_checkpointing`;
- with --profile the share of op time by op type in a traced step (where the time goes);
- with --sweep ms/step over depth, width, image size and batch, against the FLOPs of each point;
- the CPU's measured FMA peak: independent vector FMA chains in C (gcc, at bench time) on every
  core, fp32 and AVX512_BF16 dot products (--peak_gflops is the nominal figure), "not measured"
  without a compiler;
- with --precision=float32,mixed_bfloat16 one model per precision, alternating, and the
  ratio of each step to the first's (encode/decode likewise);
- with --compare_torch, the same architecture in plain eager PyTorch (tools/bench_torch.py:
  channels-first, one module per layer, fused Adam, no torch.compile): its training step on the
  same batch (same loss and optimizer), and its encode / decode at batch 64, alternating with
  ours; the ratios are ours against it. It runs float32 whatever --precision says, on
  --torch_threads threads per op (PyTorch's default: one per core), since eager PyTorch runs one
  op at a time and so threads per op is its only way to use the cores; --branches does not apply
  to it. torch is an optional extra (`pip install torch==2.13.0`, CPU build; tools/setup.sh
  installs it on CPU machines). glow-bench sets OMP_WAIT_POLICY=PASSIVE unless the environment
  sets it: PyTorch's OpenMP threads otherwise spin at the end of every op until all have
  finished, and on a shared machine, where another process holds a core, that spinning took
  config b's PyTorch step from 0.36-0.51 s at 1 thread to 8.0-15.9 s at 2 (load 5-8; passive:
  about as fast as 1 thread). On a quiet machine ACTIVE is PyTorch's fastest, but its threads
  then spin on through glow_tf2's turns in the alternation too (glow_tf2's config b step 210 ms
  beside spinning PyTorch threads, 143-159 ms beside none, same session): for PyTorch at its
  best time it alone, OMP_WAIT_POLICY=ACTIVE, and set the two figures side by side.

--intra_op_threads / --inter_op_threads size TensorFlow's thread pools for every contender
alike; --branches runs each batch as that many independent sub-batches, glow_tf2's through
`Glow(branches=...)`, tfp.bijectors.Glow's by splitting its batch in the step, so the ratio
compares the implementations, not the scheduling. On the 2-core machine of the README, one thread
per op and two ops at once is the fastest setting for both (branches add nothing there).
"""

from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_enum(
  "config", "b", ["a", "b", "c", "paper"], "Named configuration (see CONFIGS; paper = c)."
)
flags.DEFINE_list(
  "precision",
  ["float32"],
  "GlowConfig.precision of glow_tf2's model; several (float32,mixed_bfloat16) time one model "
  "each, alternating, with ratios to the first.",
)
flags.DEFINE_string("cc", "gcc", "C compiler for the FMA peak probe (none found: not measured).")
flags.DEFINE_bool(
  "compare_tfp", False, "Time tfp.bijectors.Glow at the same settings, alternating."
)
flags.DEFINE_bool(
  "compare_torch",
  False,
  "Time the same Glow in eager PyTorch (tools/bench_torch.py), alternating; needs torch installed.",
)
flags.DEFINE_integer(
  "torch_threads", 0, "PyTorch's threads per op with --compare_torch (0 = its default)."
)
flags.DEFINE_bool("joint", True, "Time the joint (two-model) training step.")
flags.DEFINE_bool("xla", False, "Also time the training step with jit_compile=True.")
flags.DEFINE_bool(
  "memory", False, "Peak RSS with and without gradient checkpointing (child processes)."
)
flags.DEFINE_bool("sweep", False, "ms/step over depth, width, image size and batch.")
flags.DEFINE_bool(
  "profile",
  False,
  "Where the time of a training step goes, by op type (a traced step in a child process).",
)
flags.DEFINE_integer("reps", 15, "Timed repetitions per contender.")
flags.DEFINE_integer("warmup", 3, "Untimed repetitions first (tracing, allocator warm-up).")
flags.DEFINE_float(
  "peak_gflops",
  540.0,
  "The CPU's nominal fp32 peak, for the % of peak column "
  "(2 cores x 64 flops per cycle with AVX-512 FMA x ~4.2 GHz).",
)
flags.DEFINE_integer("intra_op_threads", 0, "TensorFlow's threads per op (0 = its default).")
flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow's ops at once (0 = its default).")
flags.DEFINE_integer(
  "branches",
  1,
  "Run every batch as this many independent sub-batches (every contender alike).",
  lower_bound=1,
)
flags.DEFINE_bool(
  "measure_peak", True, "Measure the CPU's FMA peak (fp32, and bf16 dot products if it has them)."
)
flags.DEFINE_string("json", None, "Write the results as JSON here.")
flags.DEFINE_string("markdown", None, "Write a markdown table here.")
flags.DEFINE_string("plot", None, "Write a PNG plot of the sweep here.")
flags.DEFINE_string("memory_probe", None, "Internal: run one memory probe (JSON spec) and exit.")
flags.DEFINE_string(
  "profile_probe", None, "Internal: trace one training step (JSON spec) and exit."
)


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  image_size: int = 32
  channels: int = 3
  n_levels: int = 3
  depth: int = 8
  width: int = 128
  batch: int = 16
  coupling: str = "affine"
  permutation: str = "lu"
  precision: str = "float32"

  def glow_config(self):
    import glow_tf2

    return glow_tf2.GlowConfig(
      precision=self.precision,
      image_shape=(self.image_size, self.image_size, self.channels),
      n_levels=self.n_levels,
      depth=self.depth,
      width=self.width,
      permutation=self.permutation,
      coupling=self.coupling,
    )


CONFIGS = {
  # a: a smoke configuration, seconds to run.
  "a": BenchConfig(image_size=16, n_levels=2, depth=2, width=32, batch=8),
  # b: the configuration of the comparison with the popular PyTorch Glow (rosinality's, 1.66 M
  # parameters).
  "b": BenchConfig(),
  # c: the original's CIFAR/edges2shoes model (depth 32, width 512, batch 64).
  "c": BenchConfig(depth=32, width=512, batch=64),
}
CONFIGS["paper"] = CONFIGS["c"]


def forward_flops_per_image(config) -> float:
  """Multiply-adds x 2 of the convolutions and per-pixel matmuls of one encoding.

  Per step of flow on an h x w x c level: the 1x1 conv (c x c), and the coupling network:
  3x3 conv (c/2 + 1 edge channel -> width), 1x1 (width -> width), 3x3 zero conv
  (width + 1 -> c or c/2 outputs); per split, the prior's 3x3 conv (c/2 + 1 -> c); the learned
  top prior's 3x3 conv of the edge channel (1 -> 2c). Element-wise
  work is left out: it is a few percent and costs memory traffic rather than FLOPs.
  """
  total = 0.0
  for level, (h, w, c) in enumerate(config.level_shapes):
    half = c // 2
    out = c if config.coupling == "affine" else c - half
    per_pixel = (
      c * c
      + 9 * (half + 1) * config.width
      + config.width * config.width
      + 9 * (config.width + 1) * out
    )
    total += config.depth * 2.0 * h * w * per_pixel
    if level < config.n_levels - 1:
      total += 2.0 * h * w * 9 * (half + 1) * c
    elif config.learntop:  # the top prior's conv sees only the edge channel
      total += 2.0 * h * w * 9 * 2 * c
  return total


def train_step_flops(config, batch: int) -> float:
  """A training step is about one forward and a backward of twice its cost."""
  return 3.0 * forward_flops_per_image(config) * batch


def median_and_iqr(times: Sequence[float]) -> dict[str, float]:
  ms = np.asarray(times) * 1000.0
  q1, med, q3 = np.percentile(ms, [25, 50, 75])
  return {"median_ms": float(med), "iqr_ms": float(q3 - q1), "n": len(ms)}


def alternate(
  contenders: dict[str, Callable[[], None]], reps: int, warmup: int
) -> dict[str, list[float]]:
  """Times each contender `reps` times, interleaved, so machine noise hits all of them alike."""
  for fn in contenders.values():
    for _ in range(warmup):
      fn()
  times = {name: [] for name in contenders}
  names = list(contenders)
  for rep in range(reps):
    order = names if rep % 2 == 0 else names[::-1]
    for name in order:
      start = time.perf_counter()
      contenders[name]()
      times[name].append(time.perf_counter() - start)
  return times


def _images(bench: BenchConfig, batch=None, seed=0):
  import tensorflow as tf

  from glow_tf2_tools import sample_images

  return tf.constant(
    sample_images.real_images(batch or bench.batch, bench.image_size, bench.channels, seed)
  )


def make_train_step(
  bench: BenchConfig, *, jit: bool = False, checkpointing: bool = False, branches: int = 1
):
  """A callable running one Adam step of one glow_tf2 model on a fixed real batch."""
  import tensorflow as tf

  import glow_tf2

  glow = glow_tf2.Glow(
    bench.glow_config(), seed=0, gradient_checkpointing=checkpointing, branches=branches
  )
  images = _images(bench)
  glow.initialize(glow_tf2.preprocess(images, 8, noise=False))
  optimizer = tf.keras.optimizers.Adam(1e-4)
  variables = glow.trainable_variables

  @tf.function(jit_compile=jit, autograph=False)
  def step(images):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(glow_tf2.bits_per_dim(glow, images))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return lambda: step(images).numpy(), glow


def make_joint_step(bench: BenchConfig, branches: int = 1):
  """Two models and the code loss (code_last), each model updated by its own loss."""
  import tensorflow as tf

  import glow_tf2
  from glow_tf2 import losses as losses_lib

  config = bench.glow_config()
  glows = [
    glow_tf2.Glow(config, seed=s, branches=branches, name=n)
    for s, n in ((0, "glow_a"), (1, "glow_b"))
  ]
  images = _images(bench)
  pair = (images, 255 - images)
  for glow, side in zip(glows, pair):
    glow.initialize(glow_tf2.preprocess(side, 8, noise=False))
  optimizers = [tf.keras.optimizers.Adam(1e-4) for _ in glows]
  top = config.top_dim

  @tf.function(autograph=False)
  def step(images_a, images_b):
    with tf.GradientTape(persistent=True) as tape:
      bits, codes = [], []
      for glow, side in zip(glows, (images_a, images_b)):
        log_prob, eps = losses_lib.log_prob_and_eps(glow, glow_tf2.preprocess(side, 8))
        bits.append(tf.reduce_mean(losses_lib.bits_from_log_prob(log_prob, config.data_dim, 8)))
        codes.append(eps[:, -top:])
      code_loss = tf.reduce_mean(tf.square(codes[0] - codes[1]))
      losses = [b + code_loss for b in bits]
    for glow, optimizer, loss in zip(glows, optimizers, losses):
      grads = tape.gradient(loss, glow.trainable_variables)
      optimizer.apply_gradients(zip(grads, glow.trainable_variables))
    return losses[0]

  return lambda: step(*pair).numpy()


def make_tfp_train_step(bench: BenchConfig, branches: int = 1):
  """tfp.bijectors.Glow at the closest settings, same loss and optimizer; with branches > 1 the
  batch is split into that many log_prob calls, as `Glow(branches=...)` does for glow_tf2."""
  import tensorflow as tf
  import tensorflow_probability as tfp
  from tensorflow_probability.python.bijectors import glow as tfp_glow

  width = bench.width
  bijector = tfp.bijectors.Glow(
    output_shape=(bench.image_size, bench.image_size, bench.channels),
    num_glow_blocks=bench.n_levels,
    num_steps_per_block=bench.depth,
    coupling_bijector_fn=lambda shape: tfp_glow.GlowDefaultNetwork(shape, num_hidden=width),
    exit_bijector_fn=tfp_glow.GlowDefaultExitNetwork,
    use_actnorm=True,
    seed=0,
  )
  d = bench.image_size**2 * bench.channels
  model = tfp.distributions.TransformedDistribution(
    tfp.distributions.Sample(tfp.distributions.Normal(0.0, 1.0), [d]), bijector
  )
  images = _images(bench)
  x = tf.cast(images, tf.float32) / 256.0 - 0.5
  model.log_prob(x)  # creates the variables (and runs TFP's data-dependent actnorm init)
  variables = bijector.trainable_variables
  optimizer = tf.keras.optimizers.Adam(1e-4)

  @tf.function(autograph=False)
  def step(images):
    x = tf.cast(images, tf.float32) / 256.0 - 0.5
    x += tf.random.uniform(tf.shape(x), 0.0, 1.0 / 256.0)
    with tf.GradientTape() as tape:
      log_prob = tf.concat([model.log_prob(part) for part in tf.split(x, branches)], 0)
      loss = -tf.reduce_mean(log_prob - d * math.log(256.0)) / (d * math.log(2.0))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return lambda: step(images).numpy(), sum(int(np.prod(v.shape)) for v in variables)


def make_codec(bench: BenchConfig, batch: int = 64, branches: int = 1):
  """(encode, decode) callables on a batch of `batch` real images."""
  import tensorflow as tf

  import glow_tf2

  config = bench.glow_config()
  glow = glow_tf2.Glow(config, seed=0, branches=branches)
  images = _images(bench, batch)
  glow.initialize(glow_tf2.preprocess(images, 8, noise=False))
  encode = tf.function(
    lambda im: glow.encode(glow_tf2.preprocess(im, 8, noise=False))[0], autograph=False
  )
  decode = tf.function(lambda eps: glow_tf2.postprocess(glow.decode(eps)[0], 8), autograph=False)
  eps = encode(images)
  return lambda: encode(images).numpy(), lambda: decode(eps).numpy()


def memory_probe(spec: dict) -> dict:
  """Runs in a child process: a few training steps, then this process's peak RSS."""
  bench = BenchConfig(**spec["bench"])
  rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  step, _ = make_train_step(bench, checkpointing=spec["checkpointing"])
  rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  times = []
  for _ in range(spec["steps"]):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return {
    "peak_rss_mib": peak / 1024.0,
    "rss_after_build_mib": rss_built / 1024.0,
    "rss_after_import_mib": rss_before / 1024.0,
    "step_ms_last": 1000.0 * float(np.median(times[1:] or times)),
  }


def profile_probe(spec: dict) -> dict:
  """Runs in a child process: op time by op type of traced gradient steps (graph mode).

  Op times add up across the two cores, so shares, not sums, are what to read.
  """
  import collections

  import tensorflow as tf

  import glow_tf2
  from glow_tf2_tools import sample_images

  tf.compat.v1.disable_eager_execution()
  bench = BenchConfig(**spec["bench"])
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


# The FMA peak probe: independent chains of register-resident vector FMAs on every core, so the
# figure is what the FMA units can do, not what a library's matmul reaches. 12 chains cover the
# FMA latency (4 cycles) times the FMA ports (2) with room. Mode 0 times fp32 FMAs (2 flops per
# lane), mode 1 AVX512_BF16 dot products (vdpbf16ps: 2 bf16 products and their sum added to an
# fp32 lane, 4 flops per fp32 lane), the peak of the 16-bit convolutions.
FMA_SOURCE = r"""
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifndef CHAINS
#define CHAINS 12
#endif
static long iters;
static int mode;
static float sink[64];
#pragma GCC optimize("unroll-loops")
static void *work(void *arg) {
  (void)arg;
#if defined(__AVX512F__)
  __m512 acc[CHAINS];
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
#if defined(__AVX512BF16__)
  const __m512bh p = (__m512bh)_mm512_set1_epi16(0x3f80), q = (__m512bh)_mm512_set1_epi16(0x3380);
#endif
  if (mode == 0) {
    for (long n = 0; n < iters; n++)
      for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  } else {
#if defined(__AVX512BF16__)
    for (long n = 0; n < iters; n++)
      for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_dpbf16_ps(acc[i], p, q);
#endif
  }
  float s = 0;
  for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_ps(acc[i]);
#else
  __m256 acc[CHAINS];
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long n = 0; n < iters; n++)
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  float s = 0, t[8];
  for (int i = 0; i < CHAINS; i++) { _mm256_storeu_ps(t, acc[i]); for (int j = 0; j < 8; j++) s += t[j]; }
#endif
  sink[0] += s;
  return NULL;
}
int main(int argc, char **argv) {
  int threads = atoi(argv[1]);
  iters = atol(argv[2]);
  mode = atoi(argv[3]);
#if defined(__AVX512F__)
  const double lanes = 16.0;
#else
  const double lanes = 8.0;
#endif
  /* flops per instruction: an fp32 FMA is 2 per lane; a bf16 dot product 4 (2 products, 2 adds) */
  const double flops = (mode == 0 ? 2.0 : 4.0) * lanes * CHAINS * (double)iters * threads;
  double best = 0;
  for (int rep = 0; rep < 5; rep++) {
    pthread_t tid[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, work, NULL);
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    if (flops / s > best) best = flops / s;
  }
  printf("%.3f %g\n", best / 1e9, sink[0]);
  return 0;
}
"""


def _cpu_flags() -> set[str]:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          return set(line.split(":", 1)[1].split())
  except OSError:
    pass
  return set()


def fma_peak(cc: str = "gcc", threads: int | None = None, iters: int = 20_000_000) -> dict:
  """GFLOP/s of the FMA loop above on `threads` cores (all by default), compiled now with cc.

  Returns {"measured": False, "why": ...} when there is no compiler or no AVX2/AVX-512.
  """
  import shutil
  import tempfile

  threads = threads or os.cpu_count() or 1
  cpu = _cpu_flags()
  if shutil.which(cc) is None:
    return {"measured": False, "why": f"no C compiler {cc!r} on PATH"}
  if "avx512f" in cpu:
    isa, options = "avx512", ["-mavx512f", "-mfma"]
    if "avx512_bf16" in cpu:
      isa, options = "avx512+bf16", options + ["-mavx512bf16"]
  elif "avx2" in cpu and "fma" in cpu:
    isa, options = "avx2", ["-mavx2", "-mfma"]
  else:
    return {"measured": False, "why": "the CPU has neither AVX-512 nor AVX2 FMA"}
  with tempfile.TemporaryDirectory() as tmp:
    source, binary = os.path.join(tmp, "fma.c"), os.path.join(tmp, "fma")
    with open(source, "w") as f:
      f.write(FMA_SOURCE)
    build = subprocess.run(
      [cc, "-O3", "-funroll-loops", "-pthread", *options, source, "-o", binary],
      capture_output=True,
      text=True,
      check=False,
    )
    if build.returncode != 0:
      return {"measured": False, "why": f"{cc} failed: {build.stderr.strip()[-300:]}"}
    result = {"measured": True, "isa": isa, "threads": threads}
    modes = [("fp32", 0)] + ([("bf16", 1)] if isa == "avx512+bf16" else [])
    for label, mode in modes:
      out = subprocess.run(
        [binary, str(threads), str(iters), str(mode)], capture_output=True, text=True, check=True
      )
      result[f"{label}_gflops_per_s"] = float(out.stdout.split()[0])
  return result


def run_child(flag: str, spec: dict) -> dict:
  """Runs this program with --FLAG=spec in a fresh process; returns the JSON it prints last."""
  out = subprocess.run(
    [sys.executable, "-m", "glow_tf2_tools.bench", f"--{flag}={json.dumps(spec)}"],
    capture_output=True,
    text=True,
    check=False,
  )
  if out.returncode != 0:
    raise RuntimeError(f"{flag} failed:\n{out.stderr[-2000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def sweep_points(base: BenchConfig) -> list[BenchConfig]:
  points = [dataclasses.replace(base, depth=d) for d in (8, 16, 32)]
  points += [dataclasses.replace(base, width=w) for w in (256, 512)]
  points += [dataclasses.replace(base, image_size=64)]
  points += [dataclasses.replace(base, batch=b) for b in (32, 64)]
  return points


def run_sweep(base: BenchConfig, reps: int, warmup: int) -> list[dict]:
  rows = []
  for i, point in enumerate(sweep_points(base)):
    step, _ = make_train_step(point, branches=FLAGS.branches)
    times = alternate({"step": step}, reps, warmup)["step"]
    stats = median_and_iqr(times)
    gflop = train_step_flops(point.glow_config(), point.batch) / 1e9
    rows.append(
      {
        **dataclasses.asdict(point),
        **stats,
        "gflop": gflop,
        "gflops_per_s": gflop / (stats["median_ms"] / 1000.0),
      }
    )
    print(
      f"sweep {i + 1}/{len(sweep_points(base))}: depth={point.depth} width={point.width} "
      f"size={point.image_size} batch={point.batch}: {stats['median_ms']:.1f} ms/step, "
      f"{rows[-1]['gflops_per_s']:.1f} GFLOP/s",
      flush=True,
    )
  return rows


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


TORCH_INSTALL = ".venv/bin/python -m pip install torch==2.13.0"


def _import_bench_torch():
  """tools/bench_torch.py, or None when torch is not installed (it is an optional extra)."""
  try:
    from glow_tf2_tools import bench_torch
  except ImportError as e:
    if e.name != "torch":
      raise
    return None
  return bench_torch


def _torch_status() -> str:
  if not FLAGS.compare_torch:
    return "not timed (--compare_torch not given)"
  from glow_tf2_tools import bench_torch

  return (
    f"torch {bench_torch.torch.__version__}, eager (no torch.compile), float32, channels-first, "
    f"{bench_torch.threads()} threads per op, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "
    "(tools/bench_torch.py: the same architecture)"
  )


def benchmark(bench: BenchConfig, name: str) -> dict:
  """Every measurement of one configuration; with several --precision, one model each."""
  import platform

  config = bench.glow_config()
  branches = FLAGS.branches
  precisions = FLAGS.precision
  for p in precisions:
    dataclasses.replace(bench, precision=p).glow_config()  # a bad name fails here, by name
  first = precisions[0]
  bench = dataclasses.replace(bench, precision=first)
  results = {
    "config_name": name,
    "config": dataclasses.asdict(bench),
    "precisions": precisions,
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "peak_gflops": FLAGS.peak_gflops,
    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    "load_average_1min": os.getloadavg()[0],
    "threads": {
      "intra_op": FLAGS.intra_op_threads,
      "inter_op": FLAGS.inter_op_threads,
      "branches": branches,
    },
    "torch": _torch_status(),
    "timings": {},
  }
  if FLAGS.measure_peak:
    results["measured_peak"] = fma_peak(FLAGS.cc)
  step, glow = make_train_step(bench, branches=branches)
  results["parameters"] = sum(int(np.prod(v.shape)) for v in glow.trainable_variables)
  contenders = {"train_step": step}
  for p in precisions[1:]:
    contenders[f"train_step_{p}"], _ = make_train_step(
      dataclasses.replace(bench, precision=p), branches=branches
    )
  if FLAGS.joint:
    contenders["joint_train_step"] = make_joint_step(bench, branches)
  if FLAGS.compare_tfp:
    contenders["tfp_train_step"], results["tfp_parameters"] = make_tfp_train_step(bench, branches)
  if FLAGS.xla:
    contenders["train_step_xla"], _ = make_train_step(bench, jit=True, branches=branches)
  if FLAGS.compare_torch:
    bench_torch = _import_bench_torch()
    contenders["torch_train_step"], torch_model = bench_torch.make_train_step(
      config, _images(bench).numpy()
    )
    results["torch_parameters"] = bench_torch.parameter_count(torch_model)
    results["torch_threads"] = bench_torch.threads()
  print(f"timing {', '.join(contenders)} alternately, {FLAGS.reps} reps each ...", flush=True)
  for key, times in alternate(contenders, FLAGS.reps, FLAGS.warmup).items():
    results["timings"][key] = median_and_iqr(times)
    results[f"{key}_ms"] = results["timings"][key]["median_ms"]
  gflop = train_step_flops(config, bench.batch) / 1e9
  peak = results.get("measured_peak") or {}
  for key in ["train_step"] + [f"train_step_{p}" for p in precisions[1:]]:
    rate = gflop / (results[f"{key}_ms"] / 1000.0)
    results[f"{key}_gflops_per_s"] = rate
    note = f"{rate:.1f} GFLOP/s, {100 * rate / FLAGS.peak_gflops:.1f}% of the nominal fp32 peak"
    if peak.get("measured"):
      # A 16-bit model's convs run on the bf16 units, so its share is of the bf16 peak.
      unit = "bf16" if "bfloat16" in key and "bf16_gflops_per_s" in peak else "fp32"
      note += f", {100 * rate / peak[f'{unit}_gflops_per_s']:.0f}% of the measured {unit} one"
    if key != "train_step":
      speedup = results["train_step_ms"] / results[f"{key}_ms"]
      results[f"{key}_speedup"] = speedup
      note += f"; {speedup:.2f}x the {first} step"
    results["timings"][key]["note"] = note
  if FLAGS.compare_tfp:
    results["tfp_speedup"] = results["tfp_train_step_ms"] / results["train_step_ms"]
  if FLAGS.compare_torch:
    results["torch_speedup"] = results["torch_train_step_ms"] / results["train_step_ms"]
    results["timings"]["torch_train_step"]["note"] = (
      f"the same Glow in PyTorch, {results['torch_parameters']:,} parameters; "
      f"glow_tf2's {first} step is {results['torch_speedup']:.2f}x as fast"
    )
  if FLAGS.joint:
    results["joint_over_single"] = results["joint_train_step_ms"] / results["train_step_ms"]
  codecs = {}
  for p in precisions:
    suffix = "" if p == first else f"_{p}"
    encode, decode = make_codec(dataclasses.replace(bench, precision=p), branches=branches)
    codecs[f"encode{suffix}"], codecs[f"decode{suffix}"] = encode, decode
  if FLAGS.compare_torch:
    codecs["torch_encode"], codecs["torch_decode"] = bench_torch.make_codec(
      config, _images(bench, 64).numpy()
    )
  for key, times in alternate(codecs, FLAGS.reps, FLAGS.warmup).items():
    if key.startswith("torch_"):
      results["timings"][f"{key}_batch64"] = median_and_iqr(times)
      results[f"{key}_images_per_sec"] = 64.0 / float(np.median(times))
      continue
    direction, _, suffix = key.partition("_")
    results["timings"][f"{direction}_batch64{'_' + suffix if suffix else ''}"] = median_and_iqr(
      times
    )
    results[f"{key}_images_per_sec"] = 64.0 / float(np.median(times))
  if FLAGS.compare_torch:
    for direction in ("encode", "decode"):
      speedup = (
        results[f"{direction}_images_per_sec"] / results[f"torch_{direction}_images_per_sec"]
      )
      results[f"torch_{direction}_speedup"] = speedup
      results["timings"][f"torch_{direction}_batch64"]["note"] = (
        f"the same Glow in PyTorch; glow_tf2's {first} {direction} is {speedup:.2f}x as fast"
      )
  if FLAGS.memory:
    results["memory"] = {
      label: run_child(
        "memory_probe", {"bench": dataclasses.asdict(bench), "checkpointing": flag, "steps": 3}
      )
      for label, flag in (("plain", False), ("gradient_checkpointing", True))
    }
    results["memory_ratio"] = (
      results["memory"]["gradient_checkpointing"]["peak_rss_mib"]
      / results["memory"]["plain"]["peak_rss_mib"]
    )
  if FLAGS.profile:
    results["op_time_share"] = run_child(
      "profile_probe", {"bench": dataclasses.asdict(bench), "steps": 3}
    )
  if FLAGS.sweep:
    results["sweep"] = run_sweep(bench, max(5, FLAGS.reps // 3), 2)
  return results


def main(argv):
  del argv
  if FLAGS.memory_probe:
    print(json.dumps(memory_probe(json.loads(FLAGS.memory_probe))))
    return 0
  if FLAGS.profile_probe:
    print(json.dumps(profile_probe(json.loads(FLAGS.profile_probe))))
    return 0
  if FLAGS.compare_torch:
    # Before torch loads its OpenMP runtime (see the module docstring); OMP_WAIT_POLICY=ACTIVE in
    # the environment restores spinning.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    bench_torch = _import_bench_torch()
    if bench_torch is None:
      print(
        f"glow-bench: --compare_torch needs PyTorch, which is not installed: {TORCH_INSTALL} "
        "(the CPU build; tools/setup.sh installs it on CPU machines)",
        file=sys.stderr,
      )
      return 1
    bench_torch.configure_threads(FLAGS.torch_threads)
  from glow_tf2.train import distribute  # sizes the thread pools before TensorFlow starts

  distribute.configure_threads(FLAGS.intra_op_threads, FLAGS.inter_op_threads)
  results = benchmark(CONFIGS[FLAGS.config], FLAGS.config)
  table = markdown_table(results)
  print(table)
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(results, f, indent=2)
  if FLAGS.markdown:
    with open(FLAGS.markdown, "w") as f:
      f.write(table)
  if FLAGS.plot:
    if "sweep" not in results:
      raise app.UsageError("--plot needs --sweep")
    write_plot(results["sweep"], FLAGS.plot)
  return 0


def run():
  app.run(main)


if __name__ == "__main__":
  run()
