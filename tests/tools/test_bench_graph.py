"""glow-bench --graph: its arithmetic, its op count against an independent one, one real run.

The op count walks the graph's Python ops and the function bodies TensorFlow keeps with it; the
independent count here walks the serialized GraphDef and its function library instead. The real
run measures the tiny model in both trees with the baseline at HEAD, so it needs no old code.
"""

import json
import os
import subprocess
import sys

import tensorflow as tf

from glow_tf2_tools import bench_graph
from tests import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_ratio_and_median_leave_out_what_was_not_measured():
  assert bench_graph.ratio(3.0, 4.0) == 0.75
  assert bench_graph.ratio(None, 4.0) is None and bench_graph.ratio(3.0, None) is None
  assert bench_graph.ratio(3.0, 0.0) is None
  assert bench_graph.median_of([{"x": 1.0}, {"x": 5.0}, {"x": 2.0}], "x") == 2.0
  assert bench_graph.median_of([{"x": 1.0}, {}], "x") is None


def _row(status, value):
  row = {"status": status, "wall_s": 1.0, "peak_rss_mib": 700.0, "trace_wall_s": 9.0}
  if status == "done":
    row.update({key: value for key in bench_graph.FIGURES})
  return row


def test_the_table_shows_both_trees_their_ratios_and_a_killed_child_as_over_the_limit():
  current = {"plain": [_row("done", 2.0)], "checkpointed": [_row("done", 3.0)]}
  baseline = {"plain": [_row("done", 8.0)], "checkpointed": [_row("limit", 0)]}
  entry = {"model": "b", "depth": 16, "trees": {}}
  for name, runs in (("current", current), ("baseline", baseline)):
    entry["trees"][name] = {"runs": runs, "figures": bench_graph.figures(runs)}
  entry["ratios"] = bench_graph.ratios(
    entry["trees"]["current"]["figures"], entry["trees"]["baseline"]["figures"]
  )
  assert entry["ratios"]["trace_wall_s"] == 0.25
  assert entry["ratios"]["trace_wall_s_ckpt"] == 3.0 / 9.0  # a killed child's trace still counts
  # A killed child's RSS is a lower bound only: no figure, no ratio.
  assert entry["trees"]["baseline"]["figures"]["peak_rss_mib_ckpt"] is None
  assert entry["ratios"]["peak_rss_mib_ckpt"] is None
  results = {
    "timeout_s": 1200.0,
    "models": [entry],
    "current": {"label": "current"},
    "baseline": {"label": "baseline 1234567"},
  }
  lines = bench_graph.markdown(results).splitlines()
  assert len(lines) == 5
  assert all(line.count("|") == lines[0].count("|") for line in lines)
  assert lines[2].startswith(
    "| b (depth 16) | baseline 1234567 | 8.00 / 9.00 | 8.00 / > 1200 s | 8.00 / 8.00 |"
  )
  assert "| 8 / > 1200 s |" in lines[2]  # ops, plain / checkpointed (killed)
  assert lines[3].startswith("| b (depth 16) | current | 2.00 / 3.00 | 2.00 / 3.00 |")
  assert lines[4].startswith("| b (depth 16) | current / baseline | 0.25x / 0.33x | 0.25x / - |")
  assert "| 0.25x / - |" in lines[4]  # ops ratio, and none for the killed child's


def _independent_count(graph) -> tuple[int, int, int]:
  """(ops, call sites, function bodies) from the GraphDef: the nodes and the library functions
  reachable from them through function-valued attributes, each function once."""
  graph_def = graph.as_graph_def()
  library = {f.signature.name: f for f in graph_def.library.function}

  def called(nodes):
    out = []
    for node in nodes:
      names = [v.func.name for v in node.attr.values() if v.func.name]
      names += [f.name for v in node.attr.values() for f in v.list.func]
      out.append([n for n in names if n in library])
    return out

  top = called(graph_def.node)
  seen, pending = {}, [n for c in top for n in c]
  while pending:
    name = pending.pop()
    if name not in seen:
      seen[name] = called(library[name].node_def)
      pending += [n for c in seen[name] for n in c]
  ops = len(graph_def.node) + sum(len(library[n].node_def) for n in seen)
  calls = sum(1 for c in top if c) + sum(1 for body in seen.values() for c in body if c)
  return ops, calls, len(seen)


def test_op_count_takes_each_called_body_once_and_matches_the_graph_def():
  @tf.function(autograph=False, experimental_attributes={"_noinline": True})
  def inner(x):
    return tf.sin(x) * 2.0

  @tf.function(autograph=False, experimental_attributes={"_noinline": True})
  def middle(x):
    return inner(x) + inner(x + 1.0)

  v = tf.Variable(1.0)

  @tf.function(autograph=False)
  def outer(x):
    with tf.GradientTape() as tape:
      y = middle(x * v) + inner(x)
    return y + tape.gradient(y, v)

  graph = outer.get_concrete_function(tf.TensorSpec([], tf.float32)).graph
  counts = bench_graph.count_ops(graph)
  assert (counts["ops"], counts["call_sites"], counts["functions"]) == _independent_count(graph)
  # Reached: middle's and inner's forward and backward bodies, and inner's inference body (the
  # direct call, which does not depend on v). Not reached: middle's inference body, which
  # TensorFlow keeps beside its forward one.
  assert counts["functions"] == 5 == len(graph._functions) - 1
  assert counts["call_sites"] == 7

  @tf.function(autograph=False)
  def twice(x):
    return inner(x) + inner(x + 1.0)

  graph = twice.get_concrete_function(tf.TensorSpec([], tf.float32)).graph
  counts = bench_graph.count_ops(graph)
  body = len(graph._functions[next(iter(graph._functions))].definition.node_def)
  top = len(graph.get_operations())
  assert counts == {
    "ops": top + body,
    "call_sites": 2,
    "functions": 1,
    "ops_expanded": top - 2 + 2 * body,
  }


def test_a_run_of_both_trees_reports_every_figure(tmp_path):
  out = tmp_path / "graph.json"
  run = helpers.run_python(
    [
      sys.executable,
      "-m",
      "glow_tf2_tools.bench",
      "--graph",
      "--graph_models=tiny",
      "--graph_baseline=HEAD",
      "--graph_steps=2",
      f"--json={out}",
    ],
    timeout=600,
    # From the repository root, as a user runs it: `python -m` would import the root's glow_tf2
    # in the baseline's children too, were they not started in their own tree.
    cwd=REPO,
  )
  assert run.returncode == 0, run.stderr[-3000:]
  assert "| tiny | current / baseline |" in run.stdout
  results = json.loads(out.read_text())
  head = subprocess.run(
    ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
  ).stdout.strip()
  assert results["baseline"]["commit"] == head and results["baseline"]["ref"] == "HEAD"
  assert results["current"]["tree"] == REPO
  (entry,) = results["models"]
  assert entry["model"] == "tiny"
  for tree in ("current", "baseline"):
    figures = entry["trees"][tree]["figures"]
    for key in bench_graph.FIGURES:
      assert figures[key] > 0 and figures[key + "_ckpt"] > 0, (tree, key)
    for half in ("plain", "checkpointed"):
      (row,) = entry["trees"][tree]["runs"][half]
      assert row["status"] == "done" and len(row["step_times_s"]) == 2
      assert row["glow_tf2_file"].endswith(os.path.join("glow_tf2", "__init__.py"))
      inside_repo = row["glow_tf2_file"].startswith(REPO + os.sep)
      assert inside_repo == (tree == "current"), row["glow_tf2_file"]
    assert figures["ops_ckpt"] > figures["ops"]  # the recomputation is in the graph
  # Both trees are HEAD's code: the same graph.
  assert entry["ratios"]["ops"] == 1.0 and entry["ratios"]["call_sites"] == 1.0
  for key in bench_graph.FIGURES:
    assert entry["ratios"][key] > 0
  # The baseline's worktree is gone again.
  listed = subprocess.run(
    ["git", "worktree", "list"], cwd=REPO, capture_output=True, text=True, check=True
  ).stdout
  assert "glow-bench-graph-" not in listed
