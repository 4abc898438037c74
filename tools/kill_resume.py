"""kill -9 (or SIGTERM) at random steps, resume, compare: does a resumed glow-train run end as the uninterrupted one?

  nice -n 5 .venv/bin/python -m glow_tf2_tools.kill_resume [--runs=10] [--seed=0] [--jobs=1]
      [--signal=KILL|TERM|INT] [--workers=1]

Trains one reference run of a tiny joint mnist model (tests' smoke size: 2 levels of 1 step,
width 16, 160 images an epoch in batches of 16, so 10 steps an epoch; --train_steps steps,
checkpoints every --checkpoint_steps steps and at epoch ends), then --runs runs of the same
command, each sent --signal right after the step drawn for it (uniform in [1, train_steps), from
--seed, printed first) and rerun to the end. glow-train logs every step (--log_steps=1); the
signal follows the line of the drawn step, so the process is then inside the next step or its
save.

SIGKILL (the default) loses the steps since the last checkpoint. SIGTERM and SIGINT must lose
nothing: glow-train finishes the step in flight, saves it and exits with 143 (130) and one line
naming the step and its checkpoint, and the rerun must resume from exactly that step (a signal
during the last step lets that step finish the run: exit 0, complete).
--workers=N trains every run as N MultiWorkerMirroredStrategy processes on 127.0.0.1 (each with
its TF_CONFIG; worker 0 the chief, which writes the run folder): SIGKILL goes to all of them (a
lost job), SIGTERM and SIGINT only to the last worker (one preempted machine), and every worker
must then stop after the same step with the same status and line.

For each run it prints: the signal's step, the checkpoint it resumed from, the steps lost
(trained before the signal but not in a checkpoint, so redone), the largest |difference| of any
variable of the final checkpoint from the reference's, how many variables differ, and whether the
four JSON logs (their clocks aside: wall and CPU seconds) equal the reference's record for record.
Exits 1 when any run differs by more than --tolerance (0: bit for bit, as on one device), has
other logs, or did not end as its signal should have (it ended first, or a SIGTERM lost steps).
Extra glow-train flags (--train_flag=--strategy=mirrored ...) apply to every run; a
multi-device run is exact only up to a tolerance (reduction order).
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
import socket
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from glow_tf2.input import problems

LOGS = ("train_A.txt", "train_B.txt", "test_A.txt", "test_B.txt")
# The logs' clocks, which differ run to run: wall and CPU seconds of training.
CLOCKS = ("train_time", "train_cpu_time")
STEP_LINE = re.compile(r"\] step (\d+)/(\d+) epoch")
RESUMED = re.compile(r"resumed from \S*ckpt-(\d+) at step (\d+)")
# glow-train's last line after SIGTERM or SIGINT (`preemption.Preempted`).
STOPPED = re.compile(
  r"glow-train: stopped by (SIG[A-Z]+)( to another worker)? after step (\d+) of \d+: "
  r"checkpoint (\S+); rerun the same command to resume"
)
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}
# Seconds a signalled run (or a run to the end) may take.
TIMEOUT = 300
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


@dataclasses.dataclass
class Ended:
  """How the processes of one command ended (worker 0 first)."""

  statuses: list[int]  # returncodes (-N: killed by signal N)
  stderr: list[str]
  signalled: bool = True  # the signal was sent (the run had not ended first)

  def last_lines(self) -> list[str]:
    return [(text.strip().splitlines() or [""])[-1] for text in self.stderr]


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


def free_ports(n: int) -> list[int]:
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def worker_environments(workers: int) -> list[dict[str, str]]:
  """One environment per process: the plain one, or each worker's TF_CONFIG on fresh ports."""
  if workers == 1:
    return [environment()]
  cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(workers)]}
  return [
    dict(
      environment(),
      TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
    )
    for i in range(workers)
  ]


def start(command, workers: int, scratch: str) -> list[tuple[subprocess.Popen, str]]:
  """Starts `command` as `workers` processes; (process, its stderr file) each, worker 0 first."""
  os.makedirs(scratch, exist_ok=True)
  started = []
  for i, env in enumerate(worker_environments(workers)):
    path = os.path.join(scratch, f"stderr_{i}_{time.monotonic_ns()}.txt")
    with open(path, "w") as err:
      proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
    started.append((proc, path))
  return started


def finish(started, timeout: float = TIMEOUT, signalled: bool = True) -> Ended:
  """Waits for every process (killing what is left after `timeout` seconds)."""
  deadline = time.time() + timeout
  try:
    for proc, _ in started:
      proc.wait(timeout=max(deadline - time.time(), 1))
  except subprocess.TimeoutExpired:
    pass
  finally:
    for proc, _ in started:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  texts = []
  for _, path in started:
    with open(path) as f:
      texts.append(f.read())
  return Ended([proc.returncode for proc, _ in started], texts, signalled)


def last_logged_step(path: str) -> int:
  """The highest step glow-train's stderr in `path` has logged a whole line of (0: none yet)."""
  with open(path) as f:
    text = f.read()
  whole = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
  return max((int(m.group(1)) for m in STEP_LINE.finditer(whole)), default=0)


def wait_for_step(path: str, step: int, proc: subprocess.Popen, timeout: float = TIMEOUT) -> bool:
  """Waits until the stderr file `path` of `proc` logs `step` (or a later one); False if the
  process ended (or `timeout` seconds passed) first."""
  deadline = time.time() + timeout
  while proc.poll() is None and time.time() < deadline:
    if last_logged_step(path) >= step:
      return True
    time.sleep(0.02)
  return False


def signal_after(command, step: int, signum: int, workers: int, scratch: str) -> Ended:
  """Runs `command`, sends `signum` after worker 0's log line of `step`, waits for the end.

  SIGKILL goes to every worker; any other signal to the last one only (to the one process of a
  single-worker run).
  """
  started = start(command, workers, scratch)
  chief, chief_log = started[0]
  sent = wait_for_step(chief_log, step, chief)
  if sent:
    for proc, _ in started if signum == signal.SIGKILL else started[-1:]:
      os.kill(proc.pid, signum)
  return finish(started, signalled=sent)


def run_to_end(command, workers: int, scratch: str) -> Ended:
  return finish(start(command, workers, scratch))


def check_stop(ended: Ended, signum: int, logdir: str, last_step: int = 0) -> tuple[int, str]:
  """(the step every worker stopped after, "" or what is wrong) of a run sent SIGTERM/SIGINT.

  Every worker must exit with 128 + signum and the one line naming the same step, and that
  step's checkpoint must be the folder's latest. A signal during the run's `last_step` is the
  one exception: finishing the step in flight ends the run, which then exits 0, complete.
  """
  if last_step and not any(ended.statuses) and latest_step(logdir) == last_step:
    return last_step, ""
  if ended.statuses != [128 + signum] * len(ended.statuses):
    return 0, f"exit statuses {ended.statuses}, not {128 + signum}: {ended.last_lines()}"
  matches = [STOPPED.fullmatch(line) for line in ended.last_lines()]
  if not all(matches):
    return 0, f"not the one-line stop message: {ended.last_lines()}"
  steps = {int(m.group(3)) for m in matches}
  if len(steps) != 1:
    return 0, f"the workers stopped after different steps {sorted(steps)}"
  stopped = steps.pop()
  expected = os.path.join(logdir, "checkpoints", f"ckpt-{stopped}")
  named = {m.group(4) for m in matches}
  if named != {expected} or latest_step(logdir) != stopped:
    return stopped, f"checkpoint {named} named, latest saved step {latest_step(logdir)}"
  return stopped, ""


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
      x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
      with np.errstate(invalid="ignore"):
        diff = np.atleast_1d(np.abs(x - y))
      # Equal infinities (a best loss not yet set) and NaN against NaN are no difference.
      diff[(x == y) | (np.isnan(x) & np.isnan(y))] = 0.0
      diff[np.isnan(diff)] = np.inf
      out[name] = float(np.max(diff)) if diff.size else 0.0
    else:
      out[name] = 0.0 if np.array_equal(x, y) else float("inf")
  return out


def log_records(path: str) -> list[dict]:
  """A JSON log's epoch records without their clocks (the first line, the flags, has the logdir)."""
  with open(path) as f:
    lines = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k not in CLOCKS} for r in lines[1:]]


def logs_equal(reference: str, logdir: str) -> bool:
  """Whether every JSON log of `reference` exists in `logdir` with the same epoch records."""
  for name in LOGS:
    path = os.path.join(reference, name)
    if os.path.exists(path):
      other = os.path.join(logdir, name)
      if not os.path.exists(other) or log_records(path) != log_records(other):
        return False
  return True


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


def signal_and_resume(
  command, logdir: str, step: int, signum: int, workers: int, reference: str, final: str, run=0
) -> Row:
  """Runs `command` into `logdir`, sends `signum` after `step`, reruns it to the end and
  compares the end with the reference run's (its folder, its final checkpoint prefix)."""
  scratch = os.path.join(os.path.dirname(logdir), f"stderr_{os.path.basename(logdir)}")
  ended = signal_after(command, step, signum, workers, scratch)
  saved = latest_step(logdir)
  if signum == signal.SIGKILL:
    killed = ended.signalled and all(s == -signal.SIGKILL for s in ended.statuses)
    trained, problem = step, ""
  else:
    last_step = int(re.search(r"-(\d+)$", final).group(1))
    trained, problem = check_stop(ended, signum, logdir, last_step)
    killed = ended.signalled and not problem
    trained = trained or saved
  row = Row(run, step, killed, saved, trained - saved, float("inf"), 0, False, problem)
  rerun = run_to_end(command, workers, scratch)
  if any(rerun.statuses):
    row.error = row.error or f"rerun exit {rerun.statuses}: {rerun.last_lines()}"
  else:
    match = RESUMED.search(rerun.stderr[0])
    row.resumed_from = int(match.group(2)) if match else 0
    if row.resumed_from != saved:
      row.error = row.error or f"resumed from step {row.resumed_from}, latest checkpoint {saved}"
    diffs = weight_diffs(final, os.path.join(logdir, "checkpoints", os.path.basename(final)))
    row.max_diff = max(diffs.values())
    row.n_differ = sum(d > 0 for d in diffs.values())
    row.logs_equal = logs_equal(reference, logdir)
  if not ended.signalled:
    row.error = row.error or "not signalled: " + ended.last_lines()[0]
  return row


def define_flags() -> None:
  flags.DEFINE_integer("runs", 10, "Killed and resumed runs.", lower_bound=1)
  flags.DEFINE_integer("seed", 0, "Seed of the kill steps.", lower_bound=0)
  flags.DEFINE_integer("train_steps", 20, "Steps of every run (10 an epoch).", lower_bound=2)
  flags.DEFINE_integer("checkpoint_steps", 3, "glow-train's --checkpoint_steps.", lower_bound=1)
  flags.DEFINE_float("tolerance", 0.0, "Largest |difference| of a weight allowed.", lower_bound=0)
  flags.DEFINE_integer("jobs", 1, "Killed runs trained side by side.", lower_bound=1)
  flags.DEFINE_enum("signal", "KILL", list(SIGNALS), "The signal each run is sent.")
  flags.DEFINE_integer("workers", 1, "Processes of each run (MultiWorkerMirrored).", lower_bound=1)
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
    steps, signum, workers = args.train_steps, SIGNALS[args.signal], args.workers

    def command(logdir):
      return glow_train_command(logdir, data_dir, steps, args.checkpoint_steps, args.train_flag)

    rng = random.Random(args.seed)
    kills = [rng.randrange(1, steps) for _ in range(args.runs)]
    if workers == 1:
      target = "the run"
    elif signum == signal.SIGKILL:
      target = f"all {workers} workers"
    else:
      target = f"worker {workers - 1} of {workers}"
    print(
      f"kill_resume: SIG{args.signal} to {target} after steps {kills} (seed {args.seed}); "
      f"{steps} steps, checkpoints every {args.checkpoint_steps} steps and at epoch ends (10 "
      f"steps), tolerance {args.tolerance:g}"
    )
    print("  " + " ".join(command(os.path.join(work, "<run>"))[1:]), flush=True)
    reference = os.path.join(work, "reference")
    shutil.rmtree(reference, ignore_errors=True)
    done = run_to_end(command(reference), workers, os.path.join(work, "stderr_reference"))
    if any(done.statuses):
      print(f"kill_resume: the reference run failed:\n{done.stderr[0][-3000:]}", file=sys.stderr)
      return 1
    final = os.path.join(reference, "checkpoints", f"ckpt-{steps}")
    print(format_table([], args.tolerance), flush=True)  # the header; a line per run follows

    def one_run(i: int, step: int) -> Row:
      logdir = os.path.join(work, f"run_{i}")
      shutil.rmtree(logdir, ignore_errors=True)
      row = signal_and_resume(command(logdir), logdir, step, signum, workers, reference, final, i)
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
      f"(at most {lost} steps lost to a signal){'; FAILED: runs ' + str(bad) if bad else ''}"
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
