"""glow-bench --memory_table: what one Glow's training step needs at 64, 128 and 256 px.

For each model size, image size, batch and gradient checkpointing on or off ("a cell"), one
child process runs glow-bench's memory probe (tools/bench_profile.py) and streams what it knows
after every step; this module supervises it. The peak RSS of a whole process is the figure a
buyer needs (TensorFlow's graph is most of it, see docs/benchmarks.md), so every cell gets a
fresh process, as --memory's probes do.

The supervisor must never drive a shared machine into the OOM killer: it reads the child's
resident memory from /proc every `poll_s` and kills it (SIGKILL, its own pid only) when it
passes `cap_mib`, when the machine's available memory falls under `floor_mib` (another process
may be growing too), or when the cell has run `limit_s` seconds. Such a cell is reported as
"> cap" / "> limit" with whatever the child had streamed before (often its first step). The
child's exact peak comes from the kernel (wait4's ru_maxrss), killed or not.

Cells run cheapest first (the smaller model, then image size, batch, plain before
checkpointed), so a run stopped by its budget has filled the table from the cheap end; a cell
is not launched when a cell no larger (same model and checkpointing, image size and batch no
larger) already passed the cap or the limit, since it would too.
"""

from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from glow_tf2_tools import bench_configs

# The two model sizes of the table. preset: glow_tf2/presets.py's architecture (3 levels of 8
# steps, width 128, LU, affine, learned top prior) at 3 channels, i.e. glow-bench's config b.
# paper: this project's "paper's model" (glow-bench --config=paper: the original's 3 levels of
# 32 steps, width 512), kept at 3 levels at every image size.
MODELS = {
  "preset": bench_configs.CONFIGS["b"],
  "paper": bench_configs.CONFIGS["paper"],
}
MODEL_LABELS = {
  "preset": "preset (L3, K8, W128)",
  "paper": "paper (L3, K32, W512)",
}


@dataclasses.dataclass(frozen=True)
class Cell:
  model: str
  image_size: int
  batch: int
  checkpointing: bool

  @property
  def key(self) -> str:
    return (
      f"{self.model}/{self.image_size}/{self.batch}/{'ckpt' if self.checkpointing else 'plain'}"
    )

  def bench(self) -> bench_configs.BenchConfig:
    return dataclasses.replace(MODELS[self.model], image_size=self.image_size, batch=self.batch)

  def no_larger_than(self, other: "Cell") -> bool:
    """Same model and checkpointing, and neither image size nor batch larger than `other`'s."""
    return (
      self.model == other.model
      and self.checkpointing == other.checkpointing
      and self.image_size <= other.image_size
      and self.batch <= other.batch
    )


def cells(
  models: Sequence[str],
  sizes: Sequence[int],
  batches: Sequence[int],
  checkpointing: Sequence[bool] = (False, True),
) -> list[Cell]:
  """Every cell, cheapest first: models in the order given, then size, batch, plain first."""
  return [
    Cell(m, s, b, c)
    for m in models
    for s in sorted(sizes)
    for b in sorted(batches)
    for c in sorted(checkpointing)
  ]


def _status_kib(pid: int) -> dict[str, int]:
  """VmRSS / VmHWM of a live process, in KiB ({} once it has gone)."""
  try:
    with open(f"/proc/{pid}/status") as f:
      lines = f.read().splitlines()
  except OSError:
    return {}
  out = {}
  for line in lines:
    name, _, value = line.partition(":")
    if name in ("VmRSS", "VmHWM"):
      out[name] = int(value.split()[0])
  return out


def available_mib() -> float:
  with open("/proc/meminfo") as f:
    for line in f:
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) / 1024.0
  return float("inf")


def supervise(
  argv: Sequence[str],
  *,
  cap_mib: float,
  limit_s: float,
  floor_mib: float = 0.0,
  poll_s: float = 0.1,
  available: Callable[[], float] = available_mib,
) -> dict:
  """Runs argv, collecting the JSON lines it prints, killed at the cap, floor or limit.

  Returns "status" (done | cap | floor | limit | failed), "events" (every JSON line, in order),
  "peak_rss_mib" (the kernel's high-water mark of the child), "wall_s", "cpu_s" and, when
  failed, the tail of its stderr.

  The supervisor must be a small process: on Linux a child's ru_maxrss starts at the high-water
  mark of the memory it was forked with (its parent's, kept at exec), so a child of a process
  of several GB reports at least that. glow-bench's supervisor is; tests run it in a process of
  its own.
  """
  events = []
  with tempfile.TemporaryFile(mode="w+") as stderr:
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True)

    def read():
      for line in proc.stdout:
        try:
          events.append(json.loads(line))
        except json.JSONDecodeError:
          pass  # a library's print, not ours

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    status = None
    while status is None:
      wall = time.monotonic() - start
      # Has it exited? Asked without reaping it, so that wait4 below still gets its rusage.
      if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
        break
      rss = _status_kib(proc.pid).get("VmRSS", 0) / 1024.0
      if rss > cap_mib:
        status = "cap"
      elif available() < floor_mib:
        status = "floor"
      elif wall > limit_s:
        status = "limit"
      else:
        time.sleep(poll_s)
    if status is not None:
      os.kill(proc.pid, signal.SIGKILL)
    _, code, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(code)
    reader.join(timeout=5)
    result = {
      "status": status or ("done" if proc.returncode == 0 else "failed"),
      "events": events,
      "peak_rss_mib": usage.ru_maxrss / 1024.0,
      "wall_s": time.monotonic() - start,
      "cpu_s": usage.ru_utime + usage.ru_stime,
    }
    if result["status"] == "failed":
      stderr.seek(0)
      result["stderr_tail"] = stderr.read()[-2000:]
  return result


def child_argv(spec: dict) -> list[str]:
  """glow-bench's memory probe in a fresh process, streaming its figures as JSON lines."""
  spec = {**spec, "stream": True}
  return [sys.executable, "-m", "glow_tf2_tools.bench", f"--memory_probe={json.dumps(spec)}"]


def measure(
  cell: Cell,
  *,
  steps: int,
  steady_seconds: float,
  argv_for: Callable[[dict], list[str]] = child_argv,
  **limits,
) -> dict:
  """One cell: the supervised probe's figures (the last step it reported) and its status."""
  spec = {
    "bench": dataclasses.asdict(cell.bench()),
    "checkpointing": cell.checkpointing,
    "steps": steps,
    "steady_seconds": steady_seconds,
  }
  run = supervise(argv_for(spec), **limits)
  last = next((e for e in reversed(run["events"]) if e.get("event") == "step"), {})
  row = {"cell": dataclasses.asdict(cell), "status": run["status"]}
  for key in ("first_step_s", "first_step_cpu_s", "steady_step_s", "steady_cpu_s_per_step"):
    if key in last:
      row[key] = last[key]
  row.update(
    steps=last.get("steps", 0),
    peak_rss_mib=run["peak_rss_mib"],
    wall_s=run["wall_s"],
    cpu_s=run["cpu_s"],
  )
  if "stderr_tail" in run:
    row["stderr_tail"] = run["stderr_tail"]
  return row


STOPPED = ("cap", "floor", "limit")


def run_table(
  todo: Sequence[Cell],
  measure_cell: Callable[[Cell], dict],
  *,
  stop_at: float = float("inf"),
  rows: dict | None = None,
  save: Callable[[dict], None] = lambda rows: None,
  clock: Callable[[], float] = time.time,
) -> dict:
  """Measures the cells in order into `rows` (keyed by Cell.key; measured rows are kept, so a
  run can resume from its JSON), skipping what a smaller cell ruled out and, from `stop_at`
  (epoch seconds) on, everything left."""
  rows = dict(rows or {})
  for cell in todo:
    if rows.get(cell.key, {}).get("status", "not measured") != "not measured":
      continue
    blocker = next(
      (
        r
        for r in rows.values()
        if r["status"] in STOPPED and Cell(**r["cell"]).no_larger_than(cell)
      ),
      None,
    )
    if blocker:
      b = blocker["cell"]
      why = f"{b['image_size']} px batch {b['batch']} was already > {blocker['status']}"
    elif clock() >= stop_at:
      why = "the run's budget ended before it was launched"
    else:
      print(f"memory table: {cell.key} ...", flush=True)
      rows[cell.key] = measure_cell(cell)
      r = rows[cell.key]
      print(
        f"memory table: {cell.key}: {r['status']}, peak {r['peak_rss_mib']:.0f} MiB, "
        f"{r['wall_s']:.0f} s",
        flush=True,
      )
      save(rows)
      continue
    rows[cell.key] = {"cell": dataclasses.asdict(cell), "status": "not measured", "why": why}
    save(rows)
  return rows


def _num(x: float) -> str:
  return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def _figures(row: dict | None) -> tuple[str, str, str, str]:
  """(peak RSS, first step, steady step, CPU per step) of one cell, as the table shows them."""
  if row is None or row["status"] == "not measured":
    return ("not measured",) * 4
  status = row["status"]
  if status == "failed":
    return ("failed",) * 4
  rss = f"{row['peak_rss_mib']:,.0f}"
  if status == "cap":
    rss = "> cap"
  elif status == "floor":
    rss = "> free memory"
  elif status == "limit":
    rss = f">= {rss}"
  missing = "> limit" if status == "limit" else "-"
  first = _num(row["first_step_s"]) if "first_step_s" in row else missing
  steady = _num(row["steady_step_s"]) if "steady_step_s" in row else missing
  cpu = _num(row["steady_cpu_s_per_step"]) if "steady_cpu_s_per_step" in row else missing
  return rss, first, steady, cpu


def markdown(rows: dict, order: Sequence[Cell]) -> str:
  """One line per model, image size and batch; each column "plain / checkpointed"."""
  lines = [
    "| model | image | batch | peak RSS (MiB) | first step (s, trace included) "
    "| steady step (s, wall) | CPU s per step |",
    "|---|---|---|---|---|---|---|",
  ]
  seen = []
  for cell in order:
    plain = dataclasses.replace(cell, checkpointing=False)
    if plain in seen:
      continue
    seen.append(plain)
    a = _figures(rows.get(plain.key))
    b = _figures(rows.get(dataclasses.replace(cell, checkpointing=True).key))
    pairs = [x if x == y == "not measured" else f"{x} / {y}" for x, y in zip(a, b)]
    size = f"{cell.image_size}x{cell.image_size}"
    lines.append(f"| {MODEL_LABELS[cell.model]} | {size} | {cell.batch} | {' | '.join(pairs)} |")
  whys = {}
  for cell in order:
    row = rows.get(cell.key)
    why = "not launched" if row is None else row.get("why")
    if why:
      whys.setdefault(why, []).append(cell)
  lines.append("")
  for why, skipped in whys.items():
    names = ", ".join(
      f"{c.model} {c.image_size} px batch {c.batch}{' ckpt' if c.checkpointing else ''}"
      for c in skipped
    )
    lines.append(f"- not measured ({why}): {names}")
  return "\n".join(lines) + "\n"
