"""Devices and tf.distribute strategies for training, chosen by `--strategy`.

Everything here must run before any other TensorFlow op of the process: logical CPU devices can
only be configured, and MultiWorkerMirroredStrategy only be created, while the runtime is still
uninitialised.
"""

import json
import os

import tensorflow as tf


def split_cpu(n: int) -> None:
  """Splits the first physical CPU into n logical devices (/cpu:0 .. /cpu:n-1)."""
  if n <= 1:
    return
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
  except RuntimeError as e:
    raise RuntimeError(
      f"--num_cpu_devices={n}: TensorFlow was initialised before the CPU could be "
      f"split ({e}); configure devices first"
    ) from e


def configure_threads(intra_op: int = 0, inter_op: int = 0) -> None:
  """Sizes TensorFlow's thread pools: threads per op (intra) and ops at once (inter); 0 = TF's
  default (all cores for both).

  On a CPU with few cores, `intra_op=1, inter_op=<cores>` is faster for Glow: its thin
  convolutions barely gain from a second thread, while independent chains of ops (the A and B
  models of a joint step, or `Glow(branches=B)`'s sub-batches) then run one per core instead
  of sharing every core and oversubscribing them. docs/train.md has the measurements.
  """
  try:
    if intra_op:
      tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op:
      tf.config.threading.set_inter_op_parallelism_threads(inter_op)
  except RuntimeError as e:
    raise RuntimeError(
      f"--intra_op_threads={intra_op} --inter_op_threads={inter_op}: TensorFlow "
      f"was initialised before its thread pools could be sized ({e})"
    ) from e


def make_strategy(name: str, num_cpu_devices: int = 0) -> tf.distribute.Strategy:
  """auto | one_device | mirrored | multi_worker (reads TF_CONFIG)."""
  split_cpu(num_cpu_devices)
  if name == "multi_worker" or (name == "auto" and _tf_config_has_cluster()):
    return tf.distribute.MultiWorkerMirroredStrategy()
  gpus = tf.config.list_logical_devices("GPU")
  cpus = tf.config.list_logical_devices("CPU")
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else cpus[0].name)
  devices = [d.name for d in gpus] or [d.name for d in cpus]
  if name == "mirrored" or len(devices) > 1:
    return tf.distribute.MirroredStrategy(devices)
  return tf.distribute.OneDeviceStrategy(devices[0])


def _tf_config_has_cluster() -> bool:
  try:
    config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
  except json.JSONDecodeError as e:
    raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e
  return bool(config.get("cluster"))


def worker_identity(strategy: tf.distribute.Strategy):
  """(is_chief, task_type, task_id): the chief writes logs, summaries, images and checkpoints."""
  resolver = getattr(strategy, "cluster_resolver", None)
  task_type = getattr(resolver, "task_type", None)
  task_id = getattr(resolver, "task_id", None) or 0
  cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
  return is_chief_task(task_type, task_id, cluster), task_type, task_id


def is_chief_task(task_type, task_id, cluster) -> bool:
  """Whether the task writes the run folder: the chief, or worker 0 of a cluster without one.

  A plain function of the TF_CONFIG fields, for code that runs before a strategy exists (the
  thread pools are picked before TensorFlow's runtime starts).
  """
  if task_type in (None, "chief"):
    return True
  return task_type == "worker" and (task_id or 0) == 0 and "chief" not in (cluster or {})
