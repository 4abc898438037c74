"""Picks the coupling networks' arithmetic for a CPU run by timing the run's own step.

`mixed_bfloat16` (`flows.precision`: bfloat16 convolutions in the coupling networks and priors,
float32 variables, log-determinants and flow arithmetic) gave 1.4-1.65x the float32 step on the
AMD EPYC machines of docs/benchmarks.md with test bits/dim within 0.02 after a fixed run, and was
1.3x SLOWER on an Intel Xeon with the same AVX512_BF16 flag. CPU flags do not tell which, so
with `--pick_precision` (the default) and `--precision=float32`, a run long enough to repay it
times its own training step in both (one child process each, with the thread pools
`train.threads` chose) and takes bfloat16 only when it is at least `MARGIN` faster.

Like the thread pools, the answer is cached per machine and model (`threads.machine_key`, which
covers the precision-free model) in `<cache>/precision.json`, and recorded in the run folder
(`precision.json`), which a resumed run reads first, so a run keeps its arithmetic.
"""

from collections.abc import Callable
import dataclasses
import os

from absl import logging

from glow_tf2 import config as config_lib
from glow_tf2.input import problems
from glow_tf2.train import threads

CANDIDATES = ("float32", "mixed_bfloat16")
# bfloat16 rounds the networks' arithmetic: take it only for a clear gain, not for timing noise.
MARGIN = 1.05
RUN_FILE = "precision.json"


def _with(config: config_lib.TrainConfig, precision: str) -> config_lib.TrainConfig:
  return dataclasses.replace(config, model=dataclasses.replace(config.model, precision=precision))


def choose(
  config: config_lib.TrainConfig,
  cache_path: str | None = None,
  time_step: Callable[[config_lib.TrainConfig], float] | None = None,
  has_gpu: bool | None = None,
) -> tuple[config_lib.TrainConfig, str]:
  """The config with its precision decided, and a one-line account of how.

  In this order: a precision other than float32, or --nopick_precision, is kept; a run folder's
  record (a resume) is kept; a run folder without one keeps float32; a GPU, inference or a run
  of under `threads.PROBE_MIN_STEPS` steps keeps float32; then the cache; then both candidates
  are timed (`time_step(config) -> seconds per step`, a child process by default).
  """
  if config.model.precision != "float32":
    return config, f"--precision={config.model.precision} as given"
  if not config.pick_precision:
    return config, "float32 arithmetic (--nopick_precision)"
  run_file = os.path.join(config.logdir, RUN_FILE)
  recorded = threads.read_json(run_file)
  if recorded and recorded.get("precision") in CANDIDATES:
    precision = recorded["precision"]
    return _with(config, precision), f"{precision} arithmetic, as this run recorded in {run_file}"
  if config.inference or os.path.exists(os.path.join(config.logdir, "config.json")):
    return config, "float32 arithmetic (a run that recorded no pick)"
  if threads.has_gpu() if has_gpu is None else has_gpu:
    return config, "float32 arithmetic (a GPU: its 16-bit types are --precision's to choose)"
  if threads.planned_steps(config) < threads.PROBE_MIN_STEPS:
    return config, (
      f"float32 arithmetic (a run of under {threads.PROBE_MIN_STEPS} steps does not repay "
      "timing bfloat16)"
    )
  cache_path = cache_path or os.path.join(problems.cache_dir(), RUN_FILE)
  key = threads.machine_key(_with(config, "float32"))
  cache = threads.read_json(cache_path) or {}
  if key in cache:
    precision = cache[key]["precision"]
    return _with(config, precision), f"{precision} arithmetic, timed earlier ({cache_path})"
  time_step = time_step or _probe
  timings = {}
  for precision in CANDIDATES:
    logging.info("timing the training step in %s ...", precision)
    try:
      timings[precision] = time_step(_with(config, precision))
    except RuntimeError as e:
      logging.warning("%s", e)
      return config, "float32 arithmetic (timing bfloat16 failed)"
    logging.info("  %.1f ms a step", 1000 * timings[precision])
  ratio = timings["float32"] / timings["mixed_bfloat16"]
  precision = "mixed_bfloat16" if ratio >= MARGIN else "float32"
  cache[key] = {
    "precision": precision,
    "ms_per_step": {p: round(1000 * t, 2) for p, t in timings.items()},
  }
  threads.write_json(cache_path, cache)
  return _with(config, precision), (
    f"{precision} arithmetic: the bfloat16 step is {ratio:.2f}x the float32 one "
    f"({1000 * timings['mixed_bfloat16']:.1f} against {1000 * timings['float32']:.1f} ms; "
    f"bfloat16 needs {MARGIN:.2f}x)"
  )


def _probe(config: config_lib.TrainConfig) -> float:
  """Seconds per step of `config` (its precision) with its thread pools, in a child process."""
  return threads.probe_in_child(config, (config.intra_op_threads, config.inter_op_threads))


def record(config: config_lib.TrainConfig, how: str) -> None:
  """Writes the run's precision into its folder (the chief only), for its resumes."""
  if threads.is_chief():
    threads.write_json(
      os.path.join(config.logdir, RUN_FILE), {"precision": config.model.precision, "how": how}
    )
