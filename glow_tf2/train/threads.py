"""Picks TensorFlow's CPU thread pools for a training run by timing the run's own step.

TensorFlow sizes two thread pools once per process, before its first op: intra-op (threads that
share one op) and inter-op (ops that run at once). Which split is fastest depends on the machine
and on the model. Glow's thin convolutions gain little from a second thread, while the A and B
chains of a joint step, and the independent filter and input gradients of every convolution, can
each take a core; on the 2-core machine of docs/benchmarks.md one thread per op with two ops at
once beats TensorFlow's default (every op on every core) by 1.2-1.4x, and a wide model on many
cores may well prefer the opposite. So the choice is measured, not guessed:

  for each candidate (intra, inter): a child process (a fresh TensorFlow, its pools sized first)
    builds the run's trainer on synthetic images of the problem's shape, runs WARMUP steps
    (tracing, allocator) and times STEPS more; the median is its time per step.
  the fastest candidate wins; TensorFlow's default (0, 0) is always a candidate, so picking
    never loses more than the timing noise against not picking.

The answer is cached per machine (CPU model, core count, TensorFlow version) and model (every
field that changes the step's graph or its cost) in `<cache>/threads.json`, and recorded in the
run folder (`threads.json`), which a resumed run reads first: a run keeps its thread setting
across resumes even on another machine, so its arithmetic (the order of parallel sums) stays
the same. Only CPU runs pick (a GPU does the work elsewhere), only when neither pool is given on
the command line, and only for runs long enough to repay the probe (`PROBE_MIN_STEPS`).
"""

from collections.abc import Callable
import hashlib
from importlib import metadata
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import logging
import numpy as np
import tensorflow as tf

from glow_tf2 import config as config_lib
from glow_tf2.input import problems
from glow_tf2.train import distribute
from glow_tf2.train import loop

WARMUP = 2
STEPS = 5
# A probe costs about 3 x (process start + tracing + 7 steps); below this many planned steps
# that is more than a few percent of the run, and TensorFlow's default is kept.
PROBE_MIN_STEPS = 1000
RUN_FILE = "threads.json"

Candidate = tuple[int, int]


def candidates(cores: int) -> list[Candidate]:
  """(intra, inter) settings worth timing on `cores` cores; (0, 0) is TensorFlow's default.

  One thread per op with every core running ops (1, cores); all cores per op, one op at a time
  (cores, 1); and on 4+ cores the halves in between (two chains of ops, each on half the cores).
  """
  found = [(0, 0), (1, cores), (cores, 1)]
  if cores >= 4:
    found += [(cores // 2, 2), (2, cores // 2)]
  unique = []
  for c in found:
    if c not in unique:
      unique.append(c)
  return unique


def planned_steps(config: config_lib.TrainConfig) -> int:
  """Roughly how many steps the run will train (before the problem's image size is known)."""
  per_epoch = math.ceil(config.data.n_train / config.n_batch_train)
  by_epochs = config.epochs * per_epoch
  return min(by_epochs, config.train_steps) if config.train_steps else by_epochs


def machine_key(config: config_lib.TrainConfig) -> str:
  """A hash of everything a step's speed depends on: the machine, TensorFlow, the model."""
  fields = config_lib.to_dict(config)
  relevant = {
    "cpu": _cpu_model(),
    "cores": os.cpu_count(),
    "tensorflow": _tensorflow_version(),
    "model": fields["model"],
    "loss": fields["loss"],
    "data": {k: fields["data"][k] for k in ("problem", "channels", "image_size", "crop_size")},
    **{
      k: fields[k]
      for k in (
        "n_batch_train",
        "gradient_checkpointing",
        "strategy",
        "num_cpu_devices",
        "jit_compile",
        "branches",
        "ycond",
      )
    },
  }
  blob = json.dumps(relevant, sort_keys=True, default=str)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


def choose(
  config: config_lib.TrainConfig,
  cache_path: str | None = None,
  time_step: Callable[[config_lib.TrainConfig, Candidate], float] | None = None,
  cores: int | None = None,
) -> tuple[config_lib.TrainConfig, str]:
  """The config with its thread pools decided, and a one-line account of how.

  In this order: pools given on the command line win; a run folder's record (a resume) is kept;
  a run folder without a record (started before picking existed) keeps what it is given; then
  TensorFlow's default for --nopick_threads, a GPU, inference or a short run; then the cache;
  then the candidates are timed (`time_step(config, candidate) -> seconds per step`, a child
  process by default). `record` then writes the decision into a new run's folder.
  """
  if config.intra_op_threads or config.inter_op_threads:
    return config, "thread pools as given"
  run_file = os.path.join(config.logdir, RUN_FILE)
  recorded = read_json(run_file)
  if recorded and "intra_op" in recorded:
    chosen = (int(recorded["intra_op"]), int(recorded["inter_op"]))
    return _with(config, chosen), f"{_show(chosen)}, as this run recorded in {run_file}"
  if config.inference or os.path.exists(os.path.join(config.logdir, "config.json")):
    return config, "TensorFlow's default thread pools (a run that recorded no pick)"
  if not config.pick_threads:
    chosen, how = (0, 0), "TensorFlow's default thread pools (--nopick_threads)"
  elif has_gpu():
    chosen, how = (0, 0), "TensorFlow's default thread pools (a GPU does the work)"
  elif _in_cluster():
    # A probe process would try to join the cluster; each worker keeps TensorFlow's default.
    chosen, how = (0, 0), "TensorFlow's default thread pools (a multi-worker run)"
  elif planned_steps(config) < PROBE_MIN_STEPS:
    chosen, how = (
      (0, 0),
      (
        f"TensorFlow's default thread pools (a run of under {PROBE_MIN_STEPS} steps does not "
        "repay timing them)"
      ),
    )
  else:
    chosen, how = _cached_or_timed(config, cache_path, time_step, cores)
  return _with(config, chosen), how


def record(config: config_lib.TrainConfig, how: str) -> None:
  """Writes the run's thread pools into its folder (the chief only), for its resumes."""
  if is_chief():
    write_json(
      os.path.join(config.logdir, RUN_FILE),
      {"intra_op": config.intra_op_threads, "inter_op": config.inter_op_threads, "how": how},
    )


def _cached_or_timed(config, cache_path, time_step, cores) -> tuple[Candidate, str]:
  cache_path = cache_path or os.path.join(problems.cache_dir(), "threads.json")
  key = machine_key(config)
  cache = read_json(cache_path) or {}
  if key in cache:
    chosen = (int(cache[key]["intra_op"]), int(cache[key]["inter_op"]))
    return chosen, f"{_show(chosen)}, timed earlier on this machine ({cache_path})"
  time_step = time_step or probe_in_child
  timings = {}
  for candidate in candidates(cores or os.cpu_count() or 1):
    logging.info("timing the training step with %s ...", _show(candidate))
    try:
      timings[candidate] = time_step(config, candidate)
    except RuntimeError as e:
      # The run itself will meet (and report) whatever broke the probe; train as TensorFlow would.
      logging.warning("%s", e)
      return (0, 0), "TensorFlow's default thread pools (timing the candidates failed)"
    logging.info("  %.1f ms a step", 1000 * timings[candidate])
  chosen = min(timings, key=timings.get)
  cache[key] = {
    "intra_op": chosen[0],
    "inter_op": chosen[1],
    "ms_per_step": {_show(c): round(1000 * t, 2) for c, t in timings.items()},
  }
  write_json(cache_path, cache)
  default = timings[(0, 0)]
  return chosen, (
    f"{_show(chosen)}: {1000 * timings[chosen]:.1f} ms a step against {1000 * default:.1f} ms "
    f"with TensorFlow's default thread pools ({default / timings[chosen]:.2f}x)"
  )


def probe_in_child(config: config_lib.TrainConfig, candidate: Candidate) -> float:
  """Seconds per training step with `candidate`'s pools, timed in a fresh Python process."""
  request = {
    "config": config_lib.to_dict(config),
    "intra_op": candidate[0],
    "inter_op": candidate[1],
  }
  result = subprocess.run(
    [sys.executable, "-m", "glow_tf2.train.threads"],
    input=json.dumps(request),
    capture_output=True,
    text=True,
    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
  )
  lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
  if result.returncode != 0 or not lines:
    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"timing the training step with {_show(candidate)} failed: {last}")
  measured = json.loads(lines[-1])
  for pool, wanted in zip(("intra_op", "inter_op"), candidate):
    if wanted and measured[pool] != wanted:  # the child must have sized its pools first
      raise RuntimeError(f"the timing child ran {pool}={measured[pool]}, not {wanted}")
  return float(measured["seconds_per_step"])


def time_training_step(request: dict) -> dict:
  """The child's side of `probe_in_child`: sizes the pools, builds the trainer, times steps."""
  # Importing TensorFlow starts no runtime: the pools can be sized until the first op.
  distribute.configure_threads(request["intra_op"], request["inter_op"])
  with tempfile.TemporaryDirectory() as logdir:
    config = config_lib.build(
      {"logdir": logdir, "pick_threads": False}, config_lib.from_dict(request["config"])
    )
    strategy = distribute.make_strategy(config.strategy, config.num_cpu_devices)
    problem = problems.for_data(config.data)
    rng = np.random.default_rng(0)

    def synthetic(problem, split, batch_size, *, shuffle, repeat, dal, seed, input_context=None):
      # Random uint8 images of the problem's shape: the step's cost does not depend on content.
      del split, shuffle, dal, seed, input_context
      shape = (batch_size, *problem.image_shape)
      batch = {
        "image_a": rng.integers(0, 256, shape, dtype=np.uint8),
        "image_b": rng.integers(0, 256, shape, dtype=np.uint8),
        "label": np.zeros([batch_size], np.int32),
      }
      ds = tf.data.Dataset.from_tensors(batch)
      return ds.repeat() if repeat else ds

    trainer = loop.Trainer(config, problem, strategy, synthetic)
    trainer.initialize()
    iterator = trainer.train_iterator()
    for _ in range(WARMUP):
      trainer.train_step(iterator)
    times = []
    for _ in range(STEPS):
      start = time.perf_counter()
      trainer.train_step(iterator)
      times.append(time.perf_counter() - start)
  return {
    "seconds_per_step": statistics.median(times),
    "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
    "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
  }


def _with(config: config_lib.TrainConfig, chosen: Candidate) -> config_lib.TrainConfig:
  return config_lib.build({"intra_op_threads": chosen[0], "inter_op_threads": chosen[1]}, config)


def _show(candidate: Candidate) -> str:
  if candidate == (0, 0):
    return "TensorFlow's default thread pools"
  return f"thread pools --intra_op_threads={candidate[0]} --inter_op_threads={candidate[1]}"


def read_json(path: str) -> dict | None:
  try:
    with open(path) as f:
      value = json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError) as e:
    logging.warning("ignoring %s, which cannot be read (%s); it will be rewritten", path, e)
    return None
  return value if isinstance(value, dict) else None


def write_json(path: str, value: dict) -> None:
  """Writes atomically: a reader never sees half a file, a crash leaves the old one."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".tmp")
  with os.fdopen(fd, "w") as f:
    json.dump(value, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return "unknown"


def _tensorflow_version() -> str:
  for name in ("tensorflow-cpu", "tensorflow"):
    try:
      return metadata.version(name)
    except metadata.PackageNotFoundError:
      continue
  return "unknown"


def has_gpu() -> bool:
  # Listing physical devices does not start TensorFlow's runtime, so the pools can still be sized.
  return bool(tf.config.list_physical_devices("GPU"))


def _tf_config() -> dict:
  try:
    value = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
  except ValueError:
    return {}  # make_strategy reports a malformed TF_CONFIG
  return value if isinstance(value, dict) else {}


def _in_cluster() -> bool:
  return bool(_tf_config().get("cluster"))


def is_chief() -> bool:
  """Whether this process writes the run folder (as `distribute.worker_identity` decides)."""
  tf_config = _tf_config()
  task = tf_config.get("task") or {}
  return distribute.is_chief_task(task.get("type"), task.get("index"), tf_config.get("cluster"))


if __name__ == "__main__":
  print(json.dumps(time_training_step(json.loads(sys.stdin.read()))))
