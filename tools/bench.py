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

With --graph, what tracing a training step costs, in the current source tree and in a baseline
git ref (tools/bench_graph.py; one fresh child process per figure, alternating the trees rep by
rep, ratios current / baseline):

  glow-bench --graph --graph_models=b,mnist --json=graph.json
  glow-bench --graph --graph_models=paper --graph_depths=8,16,32 --graph_current_only

- trace time of the step's tf.function (get_concrete_function: the first trace), wall and CPU s;
- the child's launch to the end of its first training step (wall, and CPU s used by then);
- ops of the step's graph including each called function's body once, the call sites, and the
  ops an inlined graph would hold;
- peak RSS of the child, plain and with gradient checkpointing (one child each);
- the median step time (wall and CPU) of the --graph_steps steps after the first.
--graph_models: b (config b), mnist (the mnist preset's joint coupled step, through the trainer)
and paper (config c, batch 64); --graph_depths measures each at those depths instead of its own;
--graph_baseline (a git ref; default the parent of the commit that added
glow_tf2/flows/shared_trace.py) is checked out with `git worktree add` into a temporary folder,
removed afterwards; --graph_current_only skips it; --graph_reps children per tree and half;
--graph_timeout_s kills a child, whose figures then read "> N s" (--rss_cap_gib and
--memory_floor_gib apply as for --memory_table); --json and --markdown write the results.

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
import os
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

from glow_tf2_tools import bench_configs
from glow_tf2_tools import bench_contenders
from glow_tf2_tools import bench_output
from glow_tf2_tools import bench_peak
from glow_tf2_tools import bench_profile

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
flags.DEFINE_bool(
  "memory_table",
  False,
  "Peak RSS and step time of one model's training step over --models x --image_sizes x "
  "--batches, plain and checkpointed, one supervised child process per cell "
  "(tools/bench_memory_table.py); writes --json (and resumes from it) and --markdown.",
)
flags.DEFINE_list("models", ["preset", "paper"], "--memory_table: preset and/or paper.")
flags.DEFINE_list("image_sizes", ["64", "128", "256"], "--memory_table: square image sizes.")
flags.DEFINE_list("batches", ["1", "4", "16"], "--memory_table: batch sizes.")
flags.DEFINE_enum(
  "table_checkpointing",
  "both",
  ["both", "plain", "checkpointed"],
  "--memory_table: which half of each cell to measure (several runs at once can split a table, "
  "each with its own --json; a table is the rows of them all).",
)
flags.DEFINE_float("rss_cap_gib", 18.0, "--memory_table: kill a cell's child past this RSS.")
flags.DEFINE_float(
  "memory_floor_gib",
  1.5,
  "--memory_table: kill a cell's child when the machine's available memory falls under this.",
)
flags.DEFINE_float("cell_limit_s", 600.0, "--memory_table: kill a cell's child after this long.")
flags.DEFINE_integer("table_steps", 4, "--memory_table: steps per cell at most (first + steady).")
flags.DEFINE_float(
  "table_steady_seconds",
  60.0,
  "--memory_table: stop a cell's steady steps once they have taken this long (at least one).",
)
flags.DEFINE_string(
  "stop_launching_at",
  None,
  "--memory_table: HH:MM UTC (today); cells not launched by then are 'not measured'.",
)
flags.DEFINE_bool(
  "graph",
  False,
  "What tracing the training step costs, in the current tree and in --graph_baseline's "
  "(tools/bench_graph.py): trace time, launch to first step, ops, peak RSS, step time; "
  "one child per measurement; prints a markdown table, writes --json and --markdown.",
)
flags.DEFINE_list(
  "graph_models", ["b", "mnist"], "--graph: b, mnist and/or paper (tiny, tiny_pair: tests)."
)
flags.DEFINE_list(
  "graph_depths",
  [],
  "--graph: steps of flow per level to measure each model at (default: its own).",
)
flags.DEFINE_string(
  "graph_baseline",
  "",
  "--graph: the git ref to compare with (default: the parent of the commit that added "
  "glow_tf2/flows/shared_trace.py), checked out with `git worktree add` into a temporary folder.",
)
flags.DEFINE_bool(
  "graph_current_only", False, "--graph: measure the current tree only (no baseline, no ratios)."
)
flags.DEFINE_integer("graph_reps", 1, "--graph: children per tree and half, alternating trees.")
flags.DEFINE_integer("graph_steps", 3, "--graph: steps after the first (their median is reported).")
flags.DEFINE_float(
  "graph_timeout_s", 1200.0, "--graph: kill a child after this long; its figures read '> N s'."
)
flags.DEFINE_string("memory_probe", None, "Internal: run one memory probe (JSON spec) and exit.")
flags.DEFINE_string(
  "profile_probe", None, "Internal: trace one training step (JSON spec) and exit."
)


@dataclasses.dataclass(frozen=True)
class Options:
  """What `benchmark` measures and how: glow-bench's flags of the same names, read in `main`."""

  precisions: tuple[str, ...]  # --precision
  reps: int
  warmup: int
  branches: int
  joint: bool
  compare_tfp: bool
  compare_torch: bool
  xla: bool
  memory: bool
  profile: bool
  sweep: bool
  measure_peak: bool
  cc: str
  peak_gflops: float
  intra_op_threads: int  # recorded in the results; `main` sizes the pools before TF starts
  inter_op_threads: int


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


def sweep_points(base: bench_configs.BenchConfig) -> list[bench_configs.BenchConfig]:
  points = [dataclasses.replace(base, depth=d) for d in (8, 16, 32)]
  points += [dataclasses.replace(base, width=w) for w in (256, 512)]
  points += [dataclasses.replace(base, image_size=64)]
  points += [dataclasses.replace(base, batch=b) for b in (32, 64)]
  return points


def run_sweep(base: bench_configs.BenchConfig, reps: int, warmup: int, branches: int) -> list[dict]:
  rows = []
  for i, point in enumerate(sweep_points(base)):
    step, _ = bench_contenders.make_train_step(point, branches=branches)
    times = alternate({"step": step}, reps, warmup)["step"]
    stats = median_and_iqr(times)
    gflop = bench_configs.train_step_flops(point.glow_config(), point.batch) / 1e9
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


def _torch_status(compare_torch: bool) -> str:
  if not compare_torch:
    return "not timed (--compare_torch not given)"
  from glow_tf2_tools import bench_torch

  return (
    f"torch {bench_torch.torch.__version__}, eager (no torch.compile), float32, channels-first, "
    f"{bench_torch.threads()} threads per op, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "
    "(tools/bench_torch.py: the same architecture)"
  )


def benchmark(bench: bench_configs.BenchConfig, name: str, options: Options) -> dict:
  """Every measurement of one configuration; with several --precision, one model each."""
  import platform

  config = bench.glow_config()
  branches = options.branches
  precisions = list(options.precisions)
  for p in precisions:
    dataclasses.replace(bench, precision=p).glow_config()  # a bad name fails here, by name
  first = precisions[0]
  bench = dataclasses.replace(bench, precision=first)
  results = {
    "config_name": name,
    "config": dataclasses.asdict(bench),
    "precisions": precisions,
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "peak_gflops": options.peak_gflops,
    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    "load_average_1min": os.getloadavg()[0],
    "threads": {
      "intra_op": options.intra_op_threads,
      "inter_op": options.inter_op_threads,
      "branches": branches,
    },
    "torch": _torch_status(options.compare_torch),
    "timings": {},
  }
  if options.measure_peak:
    results["measured_peak"] = bench_peak.fma_peak(options.cc)
  step, glow = bench_contenders.make_train_step(bench, branches=branches)
  results["parameters"] = sum(int(np.prod(v.shape)) for v in glow.trainable_variables)
  contenders = {"train_step": step}
  for p in precisions[1:]:
    contenders[f"train_step_{p}"], _ = bench_contenders.make_train_step(
      dataclasses.replace(bench, precision=p), branches=branches
    )
  if options.joint:
    contenders["joint_train_step"] = bench_contenders.make_joint_step(bench, branches)
  if options.compare_tfp:
    contenders["tfp_train_step"], results["tfp_parameters"] = bench_contenders.make_tfp_train_step(
      bench, branches
    )
  if options.xla:
    contenders["train_step_xla"], _ = bench_contenders.make_train_step(
      bench, jit=True, branches=branches
    )
  if options.compare_torch:
    bench_torch = _import_bench_torch()
    contenders["torch_train_step"], torch_model = bench_torch.make_train_step(
      config, bench_contenders.image_batch(bench).numpy()
    )
    results["torch_parameters"] = bench_torch.parameter_count(torch_model)
    results["torch_threads"] = bench_torch.threads()
  print(f"timing {', '.join(contenders)} alternately, {options.reps} reps each ...", flush=True)
  for key, times in alternate(contenders, options.reps, options.warmup).items():
    results["timings"][key] = median_and_iqr(times)
    results[f"{key}_ms"] = results["timings"][key]["median_ms"]
  gflop = bench_configs.train_step_flops(config, bench.batch) / 1e9
  peak = results.get("measured_peak") or {}
  for key in ["train_step"] + [f"train_step_{p}" for p in precisions[1:]]:
    rate = gflop / (results[f"{key}_ms"] / 1000.0)
    results[f"{key}_gflops_per_s"] = rate
    note = f"{rate:.1f} GFLOP/s, {100 * rate / options.peak_gflops:.1f}% of the nominal fp32 peak"
    if peak.get("measured"):
      # A 16-bit model's convs run on the bf16 units, so its share is of the bf16 peak.
      unit = "bf16" if "bfloat16" in key and "bf16_gflops_per_s" in peak else "fp32"
      note += f", {100 * rate / peak[f'{unit}_gflops_per_s']:.0f}% of the measured {unit} one"
    if key != "train_step":
      speedup = results["train_step_ms"] / results[f"{key}_ms"]
      results[f"{key}_speedup"] = speedup
      note += f"; {speedup:.2f}x the {first} step"
    results["timings"][key]["note"] = note
  if options.compare_tfp:
    results["tfp_speedup"] = results["tfp_train_step_ms"] / results["train_step_ms"]
  if options.compare_torch:
    results["torch_speedup"] = results["torch_train_step_ms"] / results["train_step_ms"]
    results["timings"]["torch_train_step"]["note"] = (
      f"the same Glow in PyTorch, {results['torch_parameters']:,} parameters; "
      f"glow_tf2's {first} step is {results['torch_speedup']:.2f}x as fast"
    )
  if options.joint:
    results["joint_over_single"] = results["joint_train_step_ms"] / results["train_step_ms"]
  codecs = {}
  for p in precisions:
    suffix = "" if p == first else f"_{p}"
    encode, decode = bench_contenders.make_codec(
      dataclasses.replace(bench, precision=p), branches=branches
    )
    codecs[f"encode{suffix}"], codecs[f"decode{suffix}"] = encode, decode
  if options.compare_torch:
    codecs["torch_encode"], codecs["torch_decode"] = bench_torch.make_codec(
      config, bench_contenders.image_batch(bench, 64).numpy()
    )
  for key, times in alternate(codecs, options.reps, options.warmup).items():
    if key.startswith("torch_"):
      results["timings"][f"{key}_batch64"] = median_and_iqr(times)
      results[f"{key}_images_per_sec"] = 64.0 / float(np.median(times))
      continue
    direction, _, suffix = key.partition("_")
    results["timings"][f"{direction}_batch64{'_' + suffix if suffix else ''}"] = median_and_iqr(
      times
    )
    results[f"{key}_images_per_sec"] = 64.0 / float(np.median(times))
  if options.compare_torch:
    for direction in ("encode", "decode"):
      speedup = (
        results[f"{direction}_images_per_sec"] / results[f"torch_{direction}_images_per_sec"]
      )
      results[f"torch_{direction}_speedup"] = speedup
      results["timings"][f"torch_{direction}_batch64"]["note"] = (
        f"the same Glow in PyTorch; glow_tf2's {first} {direction} is {speedup:.2f}x as fast"
      )
  if options.memory:
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
  if options.profile:
    results["op_time_share"] = run_child(
      "profile_probe", {"bench": dataclasses.asdict(bench), "steps": 3}
    )
  if options.sweep:
    results["sweep"] = run_sweep(bench, max(5, options.reps // 3), 2, branches)
  return results


def memory_table() -> int:
  """--memory_table: every cell in a supervised child, cheapest first, saved after each."""
  import calendar

  from glow_tf2_tools import bench_memory_table as table

  halves = {"both": (False, True), "plain": (False,), "checkpointed": (True,)}
  order = table.cells(
    FLAGS.models,
    [int(s) for s in FLAGS.image_sizes],
    [int(b) for b in FLAGS.batches],
    halves[FLAGS.table_checkpointing],
  )
  stop_at = float("inf")
  if FLAGS.stop_launching_at:
    hour, minute = (int(x) for x in FLAGS.stop_launching_at.split(":"))
    day = time.gmtime()
    stop_at = calendar.timegm((day.tm_year, day.tm_mon, day.tm_mday, hour, minute, 0))
  saved = {}
  if FLAGS.json and os.path.exists(FLAGS.json):
    with open(FLAGS.json) as f:
      saved = json.load(f)
  meta = saved.get("meta") or {
    "command": " ".join(sys.argv),
    "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "load_average_start": os.getloadavg(),
    "cap_gib": FLAGS.rss_cap_gib,
    "cell_limit_s": FLAGS.cell_limit_s,
  }

  def save(rows):
    meta["load_average_last"] = os.getloadavg()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if FLAGS.json:
      with open(FLAGS.json, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)

  def measure(cell):
    return table.measure(
      cell,
      steps=FLAGS.table_steps,
      steady_seconds=FLAGS.table_steady_seconds,
      cap_mib=FLAGS.rss_cap_gib * 1024,
      floor_mib=FLAGS.memory_floor_gib * 1024,
      limit_s=FLAGS.cell_limit_s,
    )

  rows = table.run_table(order, measure, stop_at=stop_at, rows=saved.get("rows"), save=save)
  save(rows)
  text = table.markdown(rows, order)
  print(text)
  if FLAGS.markdown:
    with open(FLAGS.markdown, "w") as f:
      f.write(text)
  return 0


def graph() -> int:
  """--graph: every model (x --graph_depths) in the current and the baseline tree."""
  from glow_tf2_tools import bench_graph

  plan = bench_graph.Plan(
    models=tuple(FLAGS.graph_models),
    depths=tuple(int(d) for d in FLAGS.graph_depths),
    baseline=FLAGS.graph_baseline,
    reps=FLAGS.graph_reps,
    steps=FLAGS.graph_steps,
    timeout_s=FLAGS.graph_timeout_s,
    cap_mib=FLAGS.rss_cap_gib * 1024,
    floor_mib=FLAGS.memory_floor_gib * 1024,
    intra_op=FLAGS.intra_op_threads,
    inter_op=FLAGS.inter_op_threads,
    current_only=FLAGS.graph_current_only,
  )
  results = bench_graph.run(plan, log=lambda line: print(line, flush=True))
  text = bench_graph.markdown(results)
  print(text)
  _write_outputs(results, text)
  return 0


def _write_outputs(results: dict, markdown: str) -> None:
  """results to --json and the markdown table to --markdown, where given."""
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(results, f, indent=2)
  if FLAGS.markdown:
    with open(FLAGS.markdown, "w") as f:
      f.write(markdown)


def main(argv):
  del argv
  if FLAGS.memory_probe:
    spec = json.loads(FLAGS.memory_probe)
    report = (lambda event: print(json.dumps(event), flush=True)) if spec.get("stream") else None
    print(json.dumps(bench_profile.memory_probe(spec, report)))
    return 0
  if FLAGS.memory_table:
    return memory_table()
  if FLAGS.graph:
    return graph()
  if FLAGS.profile_probe:
    print(json.dumps(bench_profile.profile_probe(json.loads(FLAGS.profile_probe))))
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
  options = Options(
    precisions=tuple(FLAGS.precision),
    reps=FLAGS.reps,
    warmup=FLAGS.warmup,
    branches=FLAGS.branches,
    joint=FLAGS.joint,
    compare_tfp=FLAGS.compare_tfp,
    compare_torch=FLAGS.compare_torch,
    xla=FLAGS.xla,
    memory=FLAGS.memory,
    profile=FLAGS.profile,
    sweep=FLAGS.sweep,
    measure_peak=FLAGS.measure_peak,
    cc=FLAGS.cc,
    peak_gflops=FLAGS.peak_gflops,
    intra_op_threads=FLAGS.intra_op_threads,
    inter_op_threads=FLAGS.inter_op_threads,
  )
  results = benchmark(bench_configs.CONFIGS[FLAGS.config], FLAGS.config, options)
  table = bench_output.markdown_table(results)
  print(table)
  _write_outputs(results, table)
  if FLAGS.plot:
    if "sweep" not in results:
      raise app.UsageError("--plot needs --sweep")
    bench_output.write_plot(results["sweep"], FLAGS.plot)
  return 0


def run():
  app.run(main)


if __name__ == "__main__":
  run()
