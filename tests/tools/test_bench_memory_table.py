"""glow-bench --memory_table: the supervisor's cap, floor and limit, the order, the table.

The supervisor is tested on fake children (a few lines of Python that print, allocate or
sleep), so these tests take seconds; one real probe runs a tiny Glow at 8x8 end to end.
"""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

from glow_tf2_tools import bench_configs
from glow_tf2_tools import bench_memory_table as table


def _python(code: str) -> list[str]:
  return [sys.executable, "-c", textwrap.dedent(code)]


def _gone(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  return False


def _supervised(child: str, **kwargs) -> dict:
  """`table.supervise(child, ...)` run from a small Python process of its own, as glow-bench runs
  it. On Linux a child's ru_maxrss starts at its parent's high-water mark when it was forked (the
  mm it had before exec), so a supervisor inside a pytest worker of several GB would report
  that worker's memory for every child."""
  code = (
    "import json, sys\n"
    "from glow_tf2_tools import bench_memory_table as table\n"
    f"run = table.supervise({_python(child)!r}, **{kwargs!r})\n"
    "print('RESULT ' + json.dumps(run))\n"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
  ).stdout
  return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def test_a_child_that_finishes_is_done_with_its_events_and_peak():
  run = _supervised(
    """
      import json
      print("a library's own line")
      print(json.dumps({"event": "step", "steps": 1}), flush=True)
      print(json.dumps({"event": "step", "steps": 2}), flush=True)
    """,
    cap_mib=10_000,
    limit_s=60,
  )
  assert run["status"] == "done"
  assert [e["steps"] for e in run["events"]] == [1, 2]
  assert 1 < run["peak_rss_mib"] < 1000 and run["cpu_s"] > 0


def test_a_child_past_the_cap_is_killed_and_its_figures_kept():
  run = _supervised(
    """
      import json, time
      print(json.dumps({"event": "step", "steps": 1, "first_step_s": 0.5}), flush=True)
      blocks = []
      for _ in range(100):  # up to 2 GB, 20 MB at a time, every page touched
        blocks.append(b"x" * (20 << 20))
        time.sleep(0.02)
      time.sleep(60)
    """,
    cap_mib=200,
    limit_s=60,
    poll_s=0.02,
  )
  assert run["status"] == "cap" and run["wall_s"] < 30
  assert run["events"] == [{"event": "step", "steps": 1, "first_step_s": 0.5}]
  # The kernel's high-water mark of the killed child: past the cap, and far from the 2 GB it
  # would have reached (how far past depends on how soon a loaded machine runs the supervisor).
  assert 200 < run["peak_rss_mib"] < 1500


def test_a_child_past_the_limit_or_the_floor_is_killed():
  sleeper = _python("""
    import os, sys, time
    print(os.getpid(), flush=True)
    time.sleep(120)
  """)
  run = table.supervise(sleeper, cap_mib=10_000, limit_s=1.0)
  assert run["status"] == "limit" and run["wall_s"] < 10
  run = table.supervise(sleeper, cap_mib=10_000, limit_s=60, floor_mib=1024, available=lambda: 10)
  assert run["status"] == "floor" and run["wall_s"] < 10


def test_a_failing_child_says_why():
  run = table.supervise(
    _python("import sys; sys.exit('no such config')"), cap_mib=10_000, limit_s=60
  )
  assert run["status"] == "failed" and "no such config" in run["stderr_tail"]


def test_cells_run_cheapest_first():
  order = table.cells(["preset", "paper"], [128, 64], [4, 1])
  assert [c.key for c in order[:5]] == [
    "preset/64/1/plain",
    "preset/64/1/ckpt",
    "preset/64/4/plain",
    "preset/64/4/ckpt",
    "preset/128/1/plain",
  ]
  assert len(order) == 16 and order[8].key == "paper/64/1/plain"
  # One half of the table (--table_checkpointing), for runs that split it.
  assert [c.key for c in table.cells(["paper"], [64], [1], (True,))] == ["paper/64/1/ckpt"]


def _row(cell, status, **figures):
  return {"cell": dataclasses.asdict(cell), "status": status, "peak_rss_mib": 900.0, **figures}


def test_run_table_skips_what_a_smaller_cell_ruled_out_and_stops_at_the_budget():
  order = table.cells(["preset"], [64, 128], [1, 4])
  outcome = {"preset/64/4/plain": "cap", "preset/64/1/ckpt": "limit"}
  launched = []

  def measure(cell):
    launched.append(cell.key)
    return {**_row(cell, outcome.get(cell.key, "done")), "wall_s": 1.0}

  rows = table.run_table(order, measure)
  assert launched == [
    "preset/64/1/plain",
    "preset/64/1/ckpt",
    "preset/64/4/plain",
    "preset/128/1/plain",
  ]
  assert "64 px batch 4 was already > cap" in rows["preset/128/4/plain"]["why"]
  assert "64 px batch 1 was already > limit" in rows["preset/128/4/ckpt"]["why"]
  # A resumed run keeps what was measured and launches only cells not measured yet.
  rows["preset/128/1/plain"] = {
    "cell": rows["preset/128/1/plain"]["cell"],
    "status": "not measured",
  }
  launched.clear()
  table.run_table(order, measure, rows=rows)
  assert launched == ["preset/128/1/plain"]
  # Past the budget nothing is launched, and the table says why.
  launched.clear()
  rows = table.run_table(order, measure, stop_at=100.0, clock=lambda: 200.0)
  assert launched == [] and all("budget" in r["why"] for r in rows.values())


def test_markdown_pairs_plain_and_checkpointed_and_names_every_status():
  order = table.cells(["preset"], [64, 128], [1])
  c = {cell.key: cell for cell in order}
  rows = {
    "preset/64/1/plain": _row(
      c["preset/64/1/plain"],
      "done",
      first_step_s=41.234,
      steady_step_s=0.5123,
      steady_cpu_s_per_step=0.9876,
    ),
    "preset/64/1/ckpt": _row(c["preset/64/1/ckpt"], "limit", first_step_s=320.0),
    "preset/128/1/plain": _row(c["preset/128/1/plain"], "cap"),
    "preset/128/1/ckpt": {
      "cell": dataclasses.asdict(c["preset/128/1/ckpt"]),
      "status": "not measured",
      "why": "the run's budget ended before it was launched",
    },
  }
  text = table.markdown(rows, order)
  assert (
    "| preset (L3, K8, W128) | 64x64 | 1 | 900 / >= 900 | 41.2 / 320 | 0.51 / > limit |" in text
  )
  assert "| 0.99 / > limit |" in text
  assert "| 128x128 | 1 | > cap / not measured | - / not measured |" in text
  assert "- not measured (the run's budget ended before it was launched): preset 128 px" in text


def test_a_real_probe_streams_its_steps(monkeypatch):
  """The whole path once, on the smallest Glow: glow-bench's child, its JSON lines, the row."""
  tiny = bench_configs.BenchConfig(image_size=8, n_levels=2, depth=1, width=8)
  monkeypatch.setitem(table.MODELS, "preset", tiny)
  cell = table.Cell("preset", 8, 2, True)
  row = table.measure(cell, steps=3, steady_seconds=60, cap_mib=8_000, limit_s=300)
  assert row["status"] == "done", row.get("stderr_tail")
  assert row["steps"] == 3 and row["cell"]["checkpointing"]
  assert row["first_step_s"] > row["steady_step_s"] > 0 and row["steady_cpu_s_per_step"] > 0
  assert row["peak_rss_mib"] > 300  # TensorFlow's own import
