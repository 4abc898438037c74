"""Distribution and robustness, each in fresh processes (devices are set up before any TF op).

- MirroredStrategy on 2 logical CPU devices == one device with the same global batch.
- MultiWorkerMirroredStrategy with 2 worker processes on 127.0.0.1: identical weights at the end.
(glow-train killed with SIGKILL and rerun: tests/train/test_resume.py.)
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

from tests.helpers import SUBPROCESS_ENV
from tests.helpers import mnist_dir
from tests.helpers import run_python

TESTS_DIR = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)  # the repository root

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests_dir!r})
    from glow_tf2.train import distribute
    distribute.split_cpu(2)  # before any other TensorFlow op
    import numpy as np
    import tensorflow as tf
    from glow_tf2.input import pipeline as input_pipeline
    from glow_tf2.input import problems
    from glow_tf2.train import loop as trainer_lib
    from tests.helpers import tiny_config, replace
    results = {{}}
    for name, strategy in [("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
        config = tiny_config({logdir!r} + "/" + name, {data_dir!r},
                             gradient_checkpointing=True)
        problem = problems.get_problem("mnist", data_dir={data_dir!r}, channels=1)
        trainer = trainer_lib.Trainer(config, problem, strategy, input_pipeline.make_dataset)
        trainer.restore_or_initialize()
        iterator = trainer.train_iterator()
        for _ in range(6):
            metrics = trainer.train_step(iterator)
        weights = [v.numpy() for s in trainer.sides for v in s.model.variables + s.ema.variables]
        np.savez({logdir!r} + "/" + name + ".npz", *weights)
        results[name] = dict(replicas=trainer.n_replicas, metrics=metrics,
                             step=int(trainer.step.numpy()))
    print("RESULTS " + json.dumps(results))
""")

WORKER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {tests_dir!r})
    from glow_tf2.train import distribute
    strategy = distribute.make_strategy("multi_worker")  # before any other TensorFlow op
    import numpy as np
    from glow_tf2.input import pipeline as input_pipeline
    from glow_tf2.input import problems
    from glow_tf2.train import loop as trainer_lib
    from tests.helpers import tiny_config
    config = tiny_config({logdir!r}, {data_dir!r}, epochs=1, n_sample=4)
    problem = problems.get_problem("mnist", data_dir={data_dir!r}, channels=1)
    trainer = trainer_lib.Trainer(config, problem, strategy, input_pipeline.make_dataset)
    trainer.fit()
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    weights = [v.numpy() for s in trainer.sides for v in s.model.variables + s.ema.variables]
    np.savez({logdir!r} + f"/weights_{{task}}.npz", *weights)
    print("DONE", task, trainer.n_replicas, trainer.is_chief, int(trainer.step.numpy()))
""")


def load_npz(path):
  with np.load(path) as f:
    return [f[f"arr_{i}"] for i in range(len(f.files))]


def free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_mirrored_on_two_cpus_equals_one_device(tmp_path_factory, tmp_path):
  data_dir = mnist_dir(tmp_path_factory)
  script = MIRRORED_SCRIPT.format(tests_dir=TESTS_DIR, logdir=str(tmp_path), data_dir=data_dir)
  result = run_python([sys.executable, "-c", script])
  assert result.returncode == 0, result.stderr[-3000:]
  results = json.loads(result.stdout.split("RESULTS ", 1)[1])
  assert results["one"]["replicas"] == 1 and results["two"]["replicas"] == 2
  assert results["one"]["step"] == results["two"]["step"] == 6
  for key, value in results["one"]["metrics"].items():
    assert abs(results["two"]["metrics"][key] - value) <= 1e-5 * abs(value), key
  one, two = load_npz(tmp_path / "one.npz"), load_npz(tmp_path / "two.npz")
  initial_scale = max(np.max(np.abs(w)) for w in one)
  worst = max(np.max(np.abs(a - b)) for a, b in zip(one, two))
  assert worst <= 1e-5 * initial_scale, worst
  # And the run trained: the weights moved from their initial values on both.
  assert results["one"]["metrics"]["loss_a"] > 0


def test_multi_worker_mirrored_two_processes(tmp_path_factory, tmp_path):
  data_dir = mnist_dir(tmp_path_factory)
  ports = free_ports(2)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  script = WORKER_SCRIPT.format(tests_dir=TESTS_DIR, logdir=str(tmp_path), data_dir=data_dir)
  procs = []
  for index in range(2):
    env = dict(
      SUBPROCESS_ENV,
      TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
    )
    procs.append(
      subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
      )
    )
  outputs = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=480)
      outputs.append((p.returncode, out, err))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for code, out, err in outputs:
    assert code == 0, err[-3000:]
  assert "DONE 0 2 True 10" in outputs[0][1] and "DONE 1 2 False 10" in outputs[1][1]
  w0, w1 = load_npz(tmp_path / "weights_0.npz"), load_npz(tmp_path / "weights_1.npz")
  assert len(w0) == len(w1) > 0
  for a, b in zip(w0, w1):
    np.testing.assert_array_equal(a, b)
  # Only the chief's files remain; the other worker's scratch checkpoints are gone.
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-10")
  assert not (tmp_path / ".worker_1").exists()
  assert (tmp_path / "train_A.txt").exists()
