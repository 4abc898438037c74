"""glow-bench --graph: what tracing a training step costs, in this tree and in a baseline tree.

The steps of flow of a level run as calls of one traced function (glow_tf2/flows/shared_trace.py)
instead of each step's ops being inlined into the training graph. That changes nothing a step
computes; it changes how long the step takes to trace, how large its graph is, how much memory
the process holds and how long a run waits for its first step. This module measures those for a
model configuration, each figure in a fresh child process:

- trace_wall_s / trace_cpu_s: the training step's `tf.function.get_concrete_function` (the first
  trace: Python building the graph, the gradient and the optimizer's update);
- first_step_s: from the child's launch (interpreter start, imports, model and optimizer built,
  data-dependent init, trace, graph optimisation) to the end of the first training step, and
  first_step_cpu_s the child's CPU seconds by then (on a shared machine the steadier figure);
- ops: the nodes of the step's graph plus those of every function body it reaches, each body
  counted once however often it is called; call_sites: the function-calling nodes among them;
  ops_expanded: the count with every call site replaced by its callee (what inlining would give);
- peak_rss_mib: the kernel's high-water mark of the child (wait4's ru_maxrss), with gradient
  checkpointing off and on (one child each);
- median_step_s / median_step_cpu_s: the median wall time and CPU time of the steps after the
  first.

The current tree is the git work tree this module belongs to; the baseline is a git ref
(default: the parent of the commit that added glow_tf2/flows/shared_trace.py) checked out by
`git worktree add` into a temporary folder and removed afterwards. A child runs
`python -m glow_tf2_tools.bench_graph SPEC` with PYTHONPATH=<tree>, so `glow_tf2` comes from that
tree while this module comes from the installed glow_tf2_tools (the editable install's finder
sits after PYTHONPATH on the import path); each child reports `glow_tf2.__file__` so a reader
can see which tree it measured. Children are supervised as glow-bench --memory_table's are (a
small parent, killed past a time limit, an RSS cap or the machine's free-memory floor); a killed
child's figures are "> N s" and the run goes on.

Models: `b` and `paper` are glow-bench's configurations b and c (one model, Adam, as glow-bench's
train_step; paper at batch 64); `mnist` is the mnist preset's joint coupled step driven through
the trainer (`glow_tf2.train.loop.Trainer`, built as glow-train builds it, on the embedded mnist
pairs, 32x32x1, batch 32) except that glow-train's thread and precision picks (which time probe
children of their own) are skipped: the pools are glow-bench's --intra_op_threads /
--inter_op_threads and the precision the preset's float32. `tiny` and `tiny_pair` are the same
two paths at toy sizes, for tests.
"""

from collections.abc import Callable
from collections.abc import Sequence
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from glow_tf2_tools import bench_configs

# name -> (path, what): "single" is one Glow and Adam (glow-bench's train_step) on a
# BenchConfig; "trainer" the joint run of the mnist preset with these TrainConfig fields over it.
MODELS = {
  "b": ("single", bench_configs.CONFIGS["b"]),
  "paper": ("single", bench_configs.CONFIGS["paper"]),
  "mnist": ("trainer", {}),
  "tiny": (
    "single",
    bench_configs.BenchConfig(image_size=8, channels=1, n_levels=2, depth=1, width=8, batch=8),
  ),
  "tiny_pair": (
    "trainer",
    {
      "model.n_levels": 2,
      "model.depth": 1,
      "model.width": 8,
      "n_batch_train": 8,
      "n_batch_init": 16,
    },
  ),
}
SHARED_TRACE = "glow_tf2/flows/shared_trace.py"
# The figures of one child, in the order the table shows them.
FIGURES = (
  "trace_wall_s",
  "trace_cpu_s",
  "first_step_s",
  "first_step_cpu_s",
  "ops",
  "call_sites",
  "ops_expanded",
  "peak_rss_mib",
  "median_step_s",
  "median_step_cpu_s",
)


# -------------------------------------------------------------------------------------------------
# Counting the ops of a graph and of the functions it calls.

# Op types whose function attributes are bodies they run; an op whose type is a function's name
# calls it too.
_CALLING_TYPES = {
  "PartitionedCall",
  "StatefulPartitionedCall",
  "If",
  "StatelessIf",
  "While",
  "StatelessWhile",
  "Case",
  "StatelessCase",
  "SymbolicGradient",
}


def _callees(node_def, functions) -> list[str]:
  """The names of the functions a NodeDef calls (its function-valued attributes, or its type)."""
  names = [node_def.op] if node_def.op in functions else []
  for value in node_def.attr.values():
    if value.HasField("func"):
      names.append(value.func.name)
    elif value.HasField("list"):
      names.extend(f.name for f in value.list.func)
  return [n for n in names if n in functions]


def count_ops(graph) -> dict[str, int]:
  """{ops, call_sites, functions, ops_expanded} of a tf.Graph (a FuncGraph) and its callees.

  ops: the graph's own ops plus the nodes of every function body reachable from them, each body
  once; call_sites: the function-calling nodes among those; functions: the bodies reached;
  ops_expanded: every call replaced by its callees' expanded bodies (what an inlined graph holds).
  Only the calling ops' NodeDefs are built: a baseline graph can hold a million ops.
  """
  functions = {name: f.definition for name, f in graph._functions.items()}
  top = []
  calls = 0
  for op in graph.get_operations():
    if op.type in _CALLING_TYPES or op.type in functions:
      callees = _callees(op.node_def, functions)
      if callees:
        calls += 1
        top.append(callees)
        continue
    top.append(None)

  bodies: dict[str, list[list[str] | None]] = {}
  pending = [name for callees in top if callees for name in callees]
  while pending:
    name = pending.pop()
    if name in bodies:
      continue
    body = [_callees(node, functions) or None for node in functions[name].node_def]
    bodies[name] = body
    pending.extend(n for callees in body if callees for n in callees)

  expanded: dict[str, int] = {}

  def size(name: str) -> int:
    if name not in expanded:
      expanded[name] = 0  # a recursive call counts as nothing rather than looping
      expanded[name] = sum(sum(map(size, c)) if c else 1 for c in bodies[name])
    return expanded[name]

  return {
    "ops": len(top) + sum(len(b) for b in bodies.values()),
    "call_sites": calls + sum(1 for b in bodies.values() for c in b if c),
    "functions": len(bodies),
    "ops_expanded": sum(sum(map(size, c)) if c else 1 for c in top),
  }


# -------------------------------------------------------------------------------------------------
# The child: one model, traced and trained a few steps, streaming what it knows as JSON lines.


def _single_step(bench: bench_configs.BenchConfig, checkpointing: bool):
  """(tf.function, its args, run-one-step) of one Glow and Adam, as glow-bench's train_step."""
  import tensorflow as tf

  import glow_tf2
  from glow_tf2.train import optim
  from glow_tf2_tools import bench_contenders

  glow = glow_tf2.Glow(bench.glow_config(), seed=0, gradient_checkpointing=checkpointing)
  images = bench_contenders.image_batch(bench)
  glow.initialize(glow_tf2.preprocess(images, 8, noise=False))
  # The tree's own Adam: a fused update per variable where the tree has one, Keras's before.
  optimizer = getattr(optim, "Adam", tf.keras.optimizers.Adam)(1e-4)
  variables = glow.trainable_variables
  optimizer.build(variables)  # its slots are made here, not inside the timed trace

  @tf.function(autograph=False)
  def step(images):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(glow_tf2.bits_per_dim(glow, images))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return step, (images,), lambda: step(images).numpy()


def _trainer_step(fields: dict, checkpointing: bool, data_dir: str, logdir: str):
  """(tf.function, its args, run-one-step) of the mnist preset's run, built as glow-train does."""
  from glow_tf2 import config as config_lib
  from glow_tf2 import presets
  from glow_tf2.input import pipeline as input_pipeline
  from glow_tf2.input import problems
  from glow_tf2.train import distribute
  from glow_tf2.train import loop

  values = {
    **presets.mnist(),
    "data.problem": "mnist",
    "data.data_dir": data_dir,
    "logdir": logdir,
    "gradient_checkpointing": checkpointing,
    **fields,
  }
  config = config_lib.build(values)
  problem = problems.for_data(config.data)
  strategy = distribute.make_strategy(config.strategy, config.num_cpu_devices)
  trainer = loop.Trainer(config, problem, strategy, input_pipeline.make_dataset)
  trainer.initialize()
  iterator = trainer.train_iterator(0)
  function = trainer.controller.step_function()
  return function, (iterator,), lambda: trainer.train_step(iterator)


def prepare(spec: dict) -> None:
  """Builds what the children share before any is timed (the embedded mnist pairs)."""
  if spec.get("data_dir"):
    from glow_tf2.input import problems

    problems.get_problem("mnist", data_dir=spec["data_dir"], channels=1)


def probe(spec: dict, report: Callable[[dict], None]) -> None:
  """Builds spec's model, traces its step, runs 1 + spec["steps"] steps; reports as it goes.

  spec: model, depth (None: the model's), checkpointing, steps, launched_at (the parent's
  time.time() at launch), data_dir and logdir (the trainer path), intra_op / inter_op threads.
  """
  import glow_tf2
  from glow_tf2.train import distribute

  distribute.configure_threads(spec.get("intra_op", 0), spec.get("inter_op", 0))
  report({"event": "start", "glow_tf2_file": glow_tf2.__file__, "pid": os.getpid()})
  path, what = MODELS[spec["model"]]
  depth, checkpointing = spec.get("depth"), spec["checkpointing"]
  if path == "single":
    bench = dataclasses.replace(what, depth=depth) if depth else what
    function, args, run_step = _single_step(bench, checkpointing)
  else:
    fields = {**what, **({"model.depth": depth} if depth else {})}
    function, args, run_step = _trainer_step(
      fields, checkpointing, spec["data_dir"], spec["logdir"]
    )
  wall, cpu = time.perf_counter(), time.process_time()
  concrete = function.get_concrete_function(*args)
  traced = {
    "trace_wall_s": time.perf_counter() - wall,
    "trace_cpu_s": time.process_time() - cpu,
  }
  report({"event": "traced", **traced})
  # Counted before the first step so a killed child still has it; its time is left out of
  # first_step_s.
  start, start_cpu = time.perf_counter(), time.process_time()
  counts = count_ops(concrete.graph)
  count_s, count_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
  del concrete
  report({"event": "counted", **counts, "count_s": count_s})
  start = time.perf_counter()
  run_step()
  first_call_s = time.perf_counter() - start
  report(
    {
      "event": "first_step",
      "first_step_s": time.time() - spec["launched_at"] - count_s,
      "first_step_cpu_s": time.process_time() - count_cpu_s,
      "first_call_s": first_call_s,
    }
  )
  times, cpu_times = [], []
  for _ in range(spec["steps"]):
    start, start_cpu = time.perf_counter(), time.process_time()
    run_step()
    times.append(time.perf_counter() - start)
    cpu_times.append(time.process_time() - start_cpu)
    report(
      {
        "event": "step",
        "step_times_s": times,
        "step_cpu_times_s": cpu_times,
        "median_step_s": statistics.median(times),
        "median_step_cpu_s": statistics.median(cpu_times),
      }
    )


def main(argv: Sequence[str]) -> int:
  """`python -m glow_tf2_tools.bench_graph SPEC`: one probe (or, with "prepare", the shared
  data), its events printed as JSON lines."""
  spec = json.loads(argv[1])
  if spec.get("prepare"):
    prepare(spec)
    return 0

  def report(event: dict) -> None:
    print(json.dumps(event), flush=True)

  probe(spec, report)
  return 0


# -------------------------------------------------------------------------------------------------
# The parent: trees, children, ratios and the table.


def git(*args: str, cwd: str) -> str:
  return subprocess.run(
    ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
  ).stdout.strip()


def current_tree() -> str:
  """The top of the git work tree holding this module (the source tree being measured)."""
  return git("rev-parse", "--show-toplevel", cwd=os.path.dirname(os.path.abspath(__file__)))


def resolve_baseline(ref: str, repo: str) -> dict:
  """{ref, commit, subject} of `ref`; "" names the parent of the commit that added
  glow_tf2/flows/shared_trace.py (found with git log, so a rebase does not break it)."""
  if not ref:
    added = git("log", "--diff-filter=A", "--format=%H", "--", SHARED_TRACE, cwd=repo).split()
    if not added:
      raise ValueError(f"no commit adds {SHARED_TRACE}; give --graph_baseline")
    ref = added[-1] + "^"
  commit = git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=repo)
  return {
    "ref": ref,
    "commit": commit,
    "subject": git("log", "-1", "--format=%s", commit, cwd=repo),
  }


@contextlib.contextmanager
def worktree(repo: str, commit: str, path: str):
  """`commit` checked out (detached) at `path` for the duration; removed afterwards."""
  git("worktree", "add", "--detach", path, commit, cwd=repo)
  try:
    yield path
  finally:
    subprocess.run(["git", "worktree", "remove", "--force", path], cwd=repo, check=False)
    subprocess.run(["git", "worktree", "prune"], cwd=repo, check=False)


def child_argv(spec: dict, tree: str) -> list[str]:
  """The child, through env(1) so the supervised pid is the Python process itself (env execs).

  It starts in `tree` (`env -C`): `python -m` puts its working folder first on the import path,
  so a child started in another checkout (glow-bench run from the repository root) would import
  that checkout's glow_tf2 whatever PYTHONPATH says.
  """
  path = os.pathsep.join([tree] + [p for p in [os.environ.get("PYTHONPATH")] if p])
  return [
    "env",
    "-C",
    tree,
    f"PYTHONPATH={path}",
    "TF_CPP_MIN_LOG_LEVEL=2",
    sys.executable,
    "-m",
    "glow_tf2_tools.bench_graph",
    json.dumps(spec),
  ]


def summarize(run: dict) -> dict:
  """One child's figures from its supervised run (bench_memory_table.supervise's result)."""
  row = {"status": run["status"], "peak_rss_mib": run["peak_rss_mib"], "wall_s": run["wall_s"]}
  for event in run["events"]:
    row.update({k: v for k, v in event.items() if k not in ("event", "pid")})
  if "stderr_tail" in run:
    row["stderr_tail"] = run["stderr_tail"]
  return row


def median_of(rows: Sequence[dict], key: str) -> float | None:
  """The median of a figure over reps, or None when a rep lacks it (killed, failed)."""
  values = [r.get(key) for r in rows]
  if not values or any(v is None for v in values):
    return None
  return float(statistics.median(values))


def ratio(current: float | None, baseline: float | None) -> float | None:
  if current is None or baseline is None or baseline == 0:
    return None
  return current / baseline


def figures(reps: dict[str, list[dict]]) -> dict:
  """{figure: median over reps} of one tree's runs: reps["plain"] and reps["checkpointed"]; the
  checkpointed child's figures carry a `_ckpt` suffix."""
  out = {}
  for half, suffix in (("plain", ""), ("checkpointed", "_ckpt")):
    rows = reps[half]
    for key in FIGURES:
      out[key + suffix] = median_of(rows, key)
    # A killed child's high-water mark is only a lower bound of what the step needs.
    if any(r["status"] != "done" for r in rows):
      out["peak_rss_mib" + suffix] = None
  return out


def ratios(current: dict, baseline: dict) -> dict:
  return {key: ratio(current[key], baseline[key]) for key in current}


def _num(x: float) -> str:
  if x >= 1000:
    return f"{x:,.0f}"
  if x < 1:
    return f"{x:.3g}"
  return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def cell(value: float | None, runs: Sequence[dict], limit_s: float, integer: bool = False) -> str:
  """A figure as the table shows it; a figure a killed child never reached says why."""
  if value is not None:
    return f"{int(value):,}" if integer else _num(value)
  statuses = {r["status"] for r in runs}
  if "limit" in statuses:
    return f"> {limit_s:.0f} s"
  if "cap" in statuses:
    return "> RSS cap"
  if "floor" in statuses:
    return "> free memory"
  if "failed" in statuses:
    return "failed"
  return "-"


def _ratio_cell(x: float | None) -> str:
  return "-" if x is None else f"{x:.2f}x"


HEADER = (
  "| model | tree | trace s, wall (plain / ckpt) | trace CPU s (plain / ckpt) | launch to first step s "
  "(wall / CPU) | ops (plain / ckpt) | call sites | ops if inlined | peak RSS MiB "
  "(plain / ckpt) | median step s (wall / CPU) |"
)


def markdown(results: dict) -> str:
  """One block per model and depth: the baseline's row, the current tree's, their ratio."""
  limit = results["timeout_s"]
  lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
  for entry in results["models"]:
    label = entry["model"] + (f" (depth {entry['depth']})" if entry["depth"] else "")
    for tree in ("baseline", "current"):
      if tree not in entry["trees"]:
        continue
      runs = entry["trees"][tree]["runs"]
      f = entry["trees"][tree]["figures"]
      plain, ckpt = runs["plain"], runs["checkpointed"]

      def two(a, b, integer=False, f=f, plain=plain, ckpt=ckpt):
        """Two figures "x / y"; a `_ckpt` key is the checkpointed child's."""
        runs_a = ckpt if a.endswith("_ckpt") else plain
        runs_b = ckpt if b.endswith("_ckpt") else plain
        return f"{cell(f[a], runs_a, limit, integer)} / {cell(f[b], runs_b, limit, integer)}"

      lines.append(
        f"| {label} | {results[tree]['label']} | {two('trace_wall_s', 'trace_wall_s_ckpt')} "
        f"| {two('trace_cpu_s', 'trace_cpu_s_ckpt')} | {two('first_step_s', 'first_step_cpu_s')} "
        f"| {two('ops', 'ops_ckpt', True)} | {cell(f['call_sites'], plain, limit, True)} "
        f"| {cell(f['ops_expanded'], plain, limit, True)} "
        f"| {two('peak_rss_mib', 'peak_rss_mib_ckpt')} "
        f"| {two('median_step_s', 'median_step_cpu_s')} |"
      )
    if "ratios" in entry:
      r = entry["ratios"]

      def rtwo(a, b, r=r):
        return f"{_ratio_cell(r[a])} / {_ratio_cell(r[b])}"

      lines.append(
        f"| {label} | current / baseline | {rtwo('trace_wall_s', 'trace_wall_s_ckpt')} "
        f"| {rtwo('trace_cpu_s', 'trace_cpu_s_ckpt')} | {rtwo('first_step_s', 'first_step_cpu_s')} "
        f"| {rtwo('ops', 'ops_ckpt')} | {_ratio_cell(r['call_sites'])} "
        f"| {_ratio_cell(r['ops_expanded'])} | {rtwo('peak_rss_mib', 'peak_rss_mib_ckpt')} "
        f"| {rtwo('median_step_s', 'median_step_cpu_s')} |"
      )
  return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class Plan:
  """What `run` measures: glow-bench's --graph_* flags."""

  models: tuple[str, ...]
  depths: tuple[int, ...] = ()  # () = each model's own depth
  baseline: str = ""  # a git ref; "" = the parent of the commit that added shared_trace
  reps: int = 1
  steps: int = 3  # after the first
  timeout_s: float = 1200.0
  cap_mib: float = 18 * 1024.0
  floor_mib: float = 1536.0
  intra_op: int = 0
  inter_op: int = 0
  current_only: bool = False  # skip the baseline (e.g. the paper's model, tens of minutes there)


def run(plan: Plan, supervise: Callable[..., dict] | None = None, log=print) -> dict:
  """Every model x depth in both trees, rep by rep, alternating which tree goes first."""
  if supervise is None:
    from glow_tf2_tools.bench_memory_table import supervise
  for model in plan.models:
    if model not in MODELS:
      raise ValueError(f"--graph_models: unknown model {model!r} (one of {', '.join(MODELS)})")
  repo = current_tree()
  baseline = resolve_baseline(plan.baseline, repo)
  results = {
    "command": " ".join(sys.argv),
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "load_average_start": os.getloadavg(),
    "cpu_count": os.cpu_count(),
    "timeout_s": plan.timeout_s,
    "plan": dataclasses.asdict(plan),
    "current": {
      "label": "current",
      "tree": repo,
      "commit": git("rev-parse", "HEAD", cwd=repo),
      "dirty": bool(git("status", "--porcelain", "--untracked-files=no", cwd=repo)),
    },
    "baseline": {"label": f"baseline {baseline['commit'][:7]}", **baseline},
    "models": [],
  }
  tmp = tempfile.mkdtemp(prefix="glow-bench-graph-")
  try:
    base_tree = os.path.join(tmp, "baseline")
    with contextlib.ExitStack() as stack:
      trees = {"current": repo}
      if not plan.current_only:
        trees["baseline"] = stack.enter_context(worktree(repo, baseline["commit"], base_tree))
      limits = {"cap_mib": plan.cap_mib, "limit_s": plan.timeout_s, "floor_mib": plan.floor_mib}
      data_dir = os.path.join(tmp, "mnist")
      if any(MODELS[m][0] == "trainer" for m in plan.models):
        log("graph: building the mnist pairs the trainer's children share ...")
        prepared = supervise(child_argv({"prepare": True, "data_dir": data_dir}, repo), **limits)
        if prepared["status"] != "done":
          raise RuntimeError(f"preparing the data failed: {prepared.get('stderr_tail', '')}")
      n = 0
      for model in plan.models:
        for depth in plan.depths or (None,):
          entry = {"model": model, "depth": depth, "trees": {}}
          runs = {t: {"plain": [], "checkpointed": []} for t in trees}
          for rep in range(plan.reps):
            order = list(trees) if rep % 2 == 0 else list(trees)[::-1]
            for tree in order:
              for half, checkpointing in (("plain", False), ("checkpointed", True)):
                n += 1
                spec = {
                  "model": model,
                  "depth": depth,
                  "checkpointing": checkpointing,
                  "steps": plan.steps,
                  "data_dir": data_dir,
                  "logdir": os.path.join(tmp, f"run{n}"),
                  "intra_op": plan.intra_op,
                  "inter_op": plan.inter_op,
                }
                log(f"graph: {model} depth {depth or 'default'} {tree} {half} rep {rep + 1} ...")
                spec["launched_at"] = time.time()
                row = summarize(supervise(child_argv(spec, trees[tree]), **limits))
                row["rep"] = rep
                runs[tree][half].append(row)
                log(
                  f"graph: ... {row['status']}, {row['wall_s']:.0f} s, "
                  f"peak {row['peak_rss_mib']:.0f} MiB, glow_tf2 from {row.get('glow_tf2_file')}"
                )
          for tree in trees:
            entry["trees"][tree] = {"runs": runs[tree], "figures": figures(runs[tree])}
          if "baseline" in trees:
            entry["ratios"] = ratios(
              entry["trees"]["current"]["figures"], entry["trees"]["baseline"]["figures"]
            )
          results["models"].append(entry)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  results["load_average_end"] = os.getloadavg()
  return results


if __name__ == "__main__":
  sys.exit(main(sys.argv))
