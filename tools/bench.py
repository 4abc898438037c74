"""glow-bench: speed and memory of glow_tf2's Glow, side by side with tfp.bijectors.Glow.

These machines are shared and noisy, so every comparison is measured in one process, alternating
the contenders rep by rep, and reported as a ratio of medians. Absolute times are printed too,
with their spread (interquartile range), but the ratio is the figure that counts.

  glow-bench --config=b --compare_tfp --json=bench.json
  glow-bench --config=b --memory --sweep --markdown=bench.md --plot=bench.png

What is timed (after warm-up, `tf.function`, float32):
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
- the CPU's measured fp32 peak: the GFLOP/s of a large matmul, in a child process with
  TensorFlow's default threads (--peak_gflops is the nominal figure).

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
flags.DEFINE_enum("config", "b", ["a", "b", "c"], "Named configuration (see CONFIGS).")
flags.DEFINE_bool(
  "compare_tfp", False, "Time tfp.bijectors.Glow at the same settings, alternating."
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
  "(2 cores x AVX-512 FMA, as issue 7 counts it).",
)
flags.DEFINE_integer("intra_op_threads", 0, "TensorFlow's threads per op (0 = its default).")
flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow's ops at once (0 = its default).")
flags.DEFINE_integer(
  "branches",
  1,
  "Run every batch as this many independent sub-batches (every contender alike).",
  lower_bound=1,
)
flags.DEFINE_bool("measure_peak", True, "Measure the fp32 GFLOP/s of a large matmul.")
flags.DEFINE_string("json", None, "Write the results as JSON here.")
flags.DEFINE_string("markdown", None, "Write a markdown table here.")
flags.DEFINE_string("plot", None, "Write a PNG plot of the sweep here.")
flags.DEFINE_string("memory_probe", None, "Internal: run one memory probe (JSON spec) and exit.")
flags.DEFINE_string(
  "profile_probe", None, "Internal: trace one training step (JSON spec) and exit."
)
flags.DEFINE_string("peak_probe", None, "Internal: time a large matmul (JSON spec) and exit.")


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

  def glow_config(self):
    import glow_tf2

    return glow_tf2.GlowConfig(
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
  # b: the reference configuration of issue 7 (a popular PyTorch Glow: 1.66 M parameters).
  "b": BenchConfig(),
  # c: the original's CIFAR/edges2shoes model (depth 32, width 512, batch 64).
  "c": BenchConfig(depth=32, width=512, batch=64),
}


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

  @tf.function(jit_compile=jit)
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

  @tf.function
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

  @tf.function
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
  encode = tf.function(lambda im: glow.encode(glow_tf2.preprocess(im, 8, noise=False))[0])
  decode = tf.function(lambda eps: glow_tf2.postprocess(glow.decode(eps)[0], 8))
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


def peak_probe(spec: dict) -> dict:
  """Runs in a child process (TensorFlow's default threads): fp32 GFLOP/s of an n^3 matmul."""
  import tensorflow as tf

  n = spec["n"]
  a = tf.random.normal([n, n])
  matmul = tf.function(lambda a: tf.matmul(a, a))
  for _ in range(3):  # the first calls pay for oneDNN's kernel generation and page faults
    matmul(a).numpy()
  times = []
  for _ in range(spec["reps"]):
    start = time.perf_counter()
    matmul(a).numpy()
    times.append(time.perf_counter() - start)
  return {"matmul_n": n, "gflops_per_s": 2.0 * n**3 / min(times) / 1e9}


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
    f"branches {threads['branches']}",
    "",
  ]
  if "measured_peak" in results:
    lines += [
      f"Measured fp32 peak: {results['measured_peak']['gflops_per_s']:.0f} GFLOP/s "
      f"(a {results['measured_peak']['matmul_n']}^3 matmul; nominal "
      f"{results['peak_gflops']:.0f}).",
      "",
    ]
  lines += ["| measurement | median | IQR | note |", "|---|---|---|---|"]
  for key, row in results["timings"].items():
    lines.append(
      f"| {key} | {row['median_ms']:.1f} ms | {row['iqr_ms']:.1f} ms | {row.get('note', '')} |"
    )
  for key in ("encode_images_per_sec", "decode_images_per_sec"):
    if key in results:
      lines.append(f"| {key} | {results[key]:.0f} images/s | | batch 64 |")
  for key in ("tfp_speedup", "joint_over_single"):
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


def benchmark(bench: BenchConfig, name: str) -> dict:
  import platform

  config = bench.glow_config()
  branches = FLAGS.branches
  results = {
    "config_name": name,
    "config": dataclasses.asdict(bench),
    "date": time.strftime("%Y-%m-%d"),
    "peak_gflops": FLAGS.peak_gflops,
    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    "threads": {
      "intra_op": FLAGS.intra_op_threads,
      "inter_op": FLAGS.inter_op_threads,
      "branches": branches,
    },
    "timings": {},
  }
  if FLAGS.measure_peak:
    results["measured_peak"] = run_child("peak_probe", {"n": 2048, "reps": 10})
  step, glow = make_train_step(bench, branches=branches)
  results["parameters"] = sum(int(np.prod(v.shape)) for v in glow.trainable_variables)
  contenders = {"train_step": step}
  if FLAGS.joint:
    contenders["joint_train_step"] = make_joint_step(bench, branches)
  if FLAGS.compare_tfp:
    contenders["tfp_train_step"], results["tfp_parameters"] = make_tfp_train_step(bench, branches)
  if FLAGS.xla:
    contenders["train_step_xla"], _ = make_train_step(bench, jit=True, branches=branches)
  print(f"timing {', '.join(contenders)} alternately, {FLAGS.reps} reps each ...", flush=True)
  for key, times in alternate(contenders, FLAGS.reps, FLAGS.warmup).items():
    results["timings"][key] = median_and_iqr(times)
    results[f"{key}_ms"] = results["timings"][key]["median_ms"]
  gflop = train_step_flops(config, bench.batch) / 1e9
  results["train_step_gflops_per_s"] = gflop / (results["train_step_ms"] / 1000.0)
  note = (
    f"{results['train_step_gflops_per_s']:.1f} GFLOP/s, "
    f"{100 * results['train_step_gflops_per_s'] / FLAGS.peak_gflops:.1f}% of the nominal peak"
  )
  if "measured_peak" in results:
    note += (
      f", {100 * results['train_step_gflops_per_s'] / results['measured_peak']['gflops_per_s']:.0f}%"
      " of the measured one"
    )
  results["timings"]["train_step"]["note"] = note
  if FLAGS.compare_tfp:
    results["tfp_speedup"] = results["tfp_train_step_ms"] / results["train_step_ms"]
  if FLAGS.joint:
    results["joint_over_single"] = results["joint_train_step_ms"] / results["train_step_ms"]
  encode, decode = make_codec(bench, branches=branches)
  codec = alternate({"encode": encode, "decode": decode}, FLAGS.reps, FLAGS.warmup)
  for key, times in codec.items():
    results["timings"][f"{key}_batch64"] = median_and_iqr(times)
    results[f"{key}_images_per_sec"] = 64.0 / float(np.median(times))
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
  if FLAGS.peak_probe:
    print(json.dumps(peak_probe(json.loads(FLAGS.peak_probe))))
    return 0
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
