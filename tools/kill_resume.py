"""kill -9 at random steps, resume, compare: does a resumed glow-train run end as the uninterrupted one?

  nice -n 5 .venv/bin/python -m glow_tf2_tools.kill_resume [--runs=10] [--seed=0] [--jobs=1]

Trains one reference run of a tiny joint mnist model (tests' smoke size: 2 levels of 1 step,
width 16, 160 images an epoch in batches of 16, so 10 steps an epoch; --train_steps steps,
checkpoints every --checkpoint_steps steps and at epoch ends), then --runs runs of the same
command, each SIGKILLed right after the step drawn for it (uniform in [1, train_steps), from
--seed, printed first) and rerun to the end. glow-train logs every step (--log_steps=1); the kill
follows the line of the drawn step, so the process is then inside the next step or its save.

For each run it prints: the kill step, the checkpoint it resumed from, the steps lost (trained
before the kill but not in a checkpoint, so redone), the largest |difference| of any variable of
the final checkpoint from the reference's, how many variables differ, and whether the four JSON
logs (train_time aside: wall-clock seconds) equal the reference's record for record. Exits 1 when
any run differs by more than --tolerance (0: bit for bit, as on one device), has other logs, or
was not killed (it ended first). Extra glow-train flags (--train_flag=--strategy=mirrored ...)
apply to every run; a multi-device run is exact only up to a tolerance (reduction order).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from glow_tf2.input import problems

LOGS = ("train_A.txt", "train_B.txt", "test_A.txt", "test_B.txt")
STEP_LINE = re.compile(r"\] step (\d+)/(\d+) epoch")
RESUMED = re.compile(r"resumed from \S*ckpt-(\d+) at step (\d+)")
# Checkpoint entries that are not weights: the save counter, the object graph, the running means.
NOT_WEIGHTS = ("save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH", "epoch_progress")


@dataclasses.dataclass
class Row:
  """One killed and resumed run."""

  run: int
  kill_step: int
  killed: bool  # SIGKILLed before it ended
  resumed_from: int  # the checkpoint step the rerun started at (0: none saved, a fresh start)
  steps_lost: int
  max_diff: float  # over every variable of the final checkpoint
  n_differ: int  # variables not bitwise equal
  logs_equal: bool
  error: str = ""


def glow_train_command(logdir: str, data_dir: str, train_steps: int, checkpoint_steps: int, extra):
  """The tiny run every process trains: the tests' (`--preset=smoke`), every step logged."""
  return [
    sys.executable,
    "-m",
    "glow_tf2.cli.train",
    "--problem=mnist",
    "--preset=smoke",
    f"--data_dir={data_dir}",
    f"--logdir={logdir}",
    "--dal=1",  # augmentation too must resume where it was
    "--epochs_full_sample=1000",
    "--n_sample=4",
    "--log_steps=1",
    "--epochs=1000000",  # the smoke preset's 3 epochs would end the run before --train_steps
    f"--train_steps={train_steps}",
    f"--checkpoint_steps={checkpoint_steps}",
    "--checkpoint_secs=0",
    "--keep_checkpoints=1000",
    *extra,
  ]


def environment() -> dict[str, str]:
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def latest_step(logdir: str) -> int:
  """The step of the latest checkpoint in `logdir/checkpoints` (0 if none)."""
  latest = tf.train.latest_checkpoint(os.path.join(logdir, "checkpoints"))
  return int(re.search(r"ckpt-(\d+)$", latest).group(1)) if latest else 0


def weight_diffs(reference: str, prefix: str) -> dict[str, float]:
  """max |a - b| per variable of two checkpoints (inf: missing in one, or another shape)."""
  a, b = tf.train.load_checkpoint(reference), tf.train.load_checkpoint(prefix)
  names_a, names_b = a.get_variable_to_shape_map(), b.get_variable_to_shape_map()
  out = {}
  for name in sorted(set(names_a) | set(names_b)):
    if any(skip in name for skip in NOT_WEIGHTS):
      continue
    if name not in names_a or name not in names_b or names_a[name] != names_b[name]:
      out[name] = float("inf")
      continue
    x, y = a.get_tensor(name), b.get_tensor(name)
    if x.dtype.kind in "fiub":
      diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
      out[name] = float(np.max(diff)) if diff.size else 0.0
    else:
      out[name] = 0.0 if np.array_equal(x, y) else float("inf")
  return out


def log_records(path: str) -> list[dict]:
  """A JSON log's epoch records without train_time (the first line, the flags, has the logdir)."""
  with open(path) as f:
    lines = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k != "train_time"} for r in lines[1:]]


def logs_equal(reference: str, logdir: str) -> bool:
  """Whether every JSON log of `reference` exists in `logdir` with the same epoch records."""
  for name in LOGS:
    path = os.path.join(reference, name)
    if os.path.exists(path):
      other = os.path.join(logdir, name)
      if not os.path.exists(other) or log_records(path) != log_records(other):
        return False
  return True


def kill_after(command, step: int) -> tuple[bool, str]:
  """Runs `command`, SIGKILLs it after its log line of `step`; (killed, the stderr's tail)."""
  proc = subprocess.Popen(
    command, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
  )
  tail = []
  killed = False
  try:
    for line in proc.stderr:
      tail = (tail + [line])[-20:]
      match = STEP_LINE.search(line)
      if match and int(match.group(1)) >= step:
        os.kill(proc.pid, signal.SIGKILL)
        killed = True
        break
    proc.wait(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  return killed and proc.returncode == -signal.SIGKILL, "".join(tail)


def run_to_end(command) -> subprocess.CompletedProcess:
  return subprocess.run(command, env=environment(), capture_output=True, text=True)


def failed(row: Row, tolerance: float) -> bool:
  return bool(row.error) or not row.killed or not row.logs_equal or not row.max_diff <= tolerance


def format_table(rows: list[Row], tolerance: float) -> str:
  header = "run  kill step  resumed from  steps lost  max |diff|  vars differ  logs equal  verdict"
  lines = [header]
  for r in rows:
    verdict = "FAIL" if failed(r, tolerance) else "ok"
    if r.error:
      verdict += f" ({r.error})"
    lines.append(
      f"{r.run:3d}  {r.kill_step:9d}  {r.resumed_from:12d}  {r.steps_lost:10d}  "
      f"{r.max_diff:10.3g}  {r.n_differ:11d}  {str(r.logs_equal).lower():>10s}  {verdict}"
    )
  return "\n".join(lines)


def define_flags() -> None:
  flags.DEFINE_integer("runs", 10, "Killed and resumed runs.", lower_bound=1)
  flags.DEFINE_integer("seed", 0, "Seed of the kill steps.", lower_bound=0)
  flags.DEFINE_integer("train_steps", 20, "Steps of every run (10 an epoch).", lower_bound=2)
  flags.DEFINE_integer("checkpoint_steps", 3, "glow-train's --checkpoint_steps.", lower_bound=1)
  flags.DEFINE_float("tolerance", 0.0, "Largest |difference| of a weight allowed.", lower_bound=0)
  flags.DEFINE_integer("jobs", 1, "Killed runs trained side by side.", lower_bound=1)
  flags.DEFINE_multi_string("train_flag", [], "Extra glow-train flags for every run.")
  flags.DEFINE_string("workdir", None, "Scratch folder (default: a temporary one, removed).")
  flags.DEFINE_string("data_dir", None, "The 1-channel mnist problem (default: built in workdir).")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  args = flags.FLAGS
  work = args.workdir or tempfile.mkdtemp(prefix="kill_resume_")
  try:
    data_dir = args.data_dir or os.path.join(work, "mnist_c1")
    problems.get_problem("mnist", data_dir=data_dir, channels=1)
    steps = args.train_steps

    def command(logdir):
      return glow_train_command(logdir, data_dir, steps, args.checkpoint_steps, args.train_flag)

    rng = random.Random(args.seed)
    kills = [rng.randrange(1, steps) for _ in range(args.runs)]
    print(
      f"kill_resume: seed {args.seed}, kill steps {kills}; {steps} steps, checkpoints every "
      f"{args.checkpoint_steps} steps and at epoch ends (10 steps), tolerance {args.tolerance:g}"
    )
    print("  " + " ".join(command(os.path.join(work, "<run>"))[1:]), flush=True)
    reference = os.path.join(work, "reference")
    shutil.rmtree(reference, ignore_errors=True)
    done = run_to_end(command(reference))
    if done.returncode != 0:
      print(f"kill_resume: the reference run failed:\n{done.stderr[-3000:]}", file=sys.stderr)
      return 1
    final = os.path.join(reference, "checkpoints", f"ckpt-{steps}")
    print(format_table([], args.tolerance), flush=True)  # the header; a line per run follows

    def one_run(i: int, step: int) -> Row:
      logdir = os.path.join(work, f"run_{i}")
      shutil.rmtree(logdir, ignore_errors=True)
      killed, tail = kill_after(command(logdir), step)
      saved = latest_step(logdir)
      row = Row(i, step, killed, saved, step - saved, float("inf"), 0, False)
      rerun = run_to_end(command(logdir))
      if rerun.returncode != 0:
        row.error = f"rerun exit {rerun.returncode}: {rerun.stderr.strip().splitlines()[-1:]}"
      else:
        match = RESUMED.search(rerun.stderr)
        row.resumed_from = int(match.group(2)) if match else 0
        if row.resumed_from != saved:
          row.error = f"resumed from step {row.resumed_from}, latest checkpoint {saved}"
        diffs = weight_diffs(final, os.path.join(logdir, "checkpoints", f"ckpt-{steps}"))
        row.max_diff = max(diffs.values())
        row.n_differ = sum(d > 0 for d in diffs.values())
        row.logs_equal = logs_equal(reference, logdir)
      if not killed:
        row.error = row.error or "not killed: " + (tail.strip().splitlines() or ["ended"])[-1]
      print(format_table([row], args.tolerance).splitlines()[-1], flush=True)
      return row

    # Runs are separate processes in separate folders: --jobs of them may go side by side.
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
      rows = list(pool.map(one_run, range(len(kills)), kills))
    print(format_table(rows, args.tolerance))
    bad = [r.run for r in rows if failed(r, args.tolerance)]
    lost = max(r.steps_lost for r in rows)
    print(
      f"kill_resume: {len(rows) - len(bad)} of {len(rows)} runs end as the reference "
      f"(at most {lost} steps lost to a kill){'; FAILED: runs ' + str(bad) if bad else ''}"
    )
    return 1 if bad else 0
  finally:
    if not args.workdir:
      shutil.rmtree(work, ignore_errors=True)


def run() -> None:
  define_flags()
  app.run(main)  # exits with main's return value


if __name__ == "__main__":
  run()
