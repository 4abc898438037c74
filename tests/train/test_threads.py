"""CPU scheduling options: thread pools sized before TensorFlow starts, and batch branches in the
trainer giving the same training as one branch."""

import json
import os
import sys
import textwrap

import numpy as np

from tests.helpers import mnist_dir
from tests.helpers import run_python

TESTS_DIR = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)  # the repository root

SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests_dir!r})
    from glow_tf2.train import distribute
    distribute.configure_threads(1, 2)  # before any other TensorFlow op
    import numpy as np
    import tensorflow as tf
    from glow_tf2.input import pipeline as input_pipeline
    from glow_tf2.input import problems
    from glow_tf2.train import loop as trainer_lib
    from tests.helpers import tiny_config
    pools = [tf.config.threading.get_intra_op_parallelism_threads(),
             tf.config.threading.get_inter_op_parallelism_threads()]
    steps = []
    for branches in (1, 2):
        config = tiny_config({logdir!r} + f"/b{{branches}}", {data_dir!r}, branches=branches)
        problem = problems.get_problem("mnist", data_dir={data_dir!r}, channels=1)
        trainer = trainer_lib.Trainer(config, problem, tf.distribute.get_strategy(),
                                      input_pipeline.make_dataset)
        assert all(s.model.glow.branches == branches for s in trainer.sides)
        trainer.restore_or_initialize()
        initial = [v.numpy() for v in trainer.sides[0].model.variables]
        iterator = trainer.train_iterator()
        for _ in range(3):
            trainer.train_step(iterator)
        steps.append(int(trainer.step.numpy()))
        assert any(np.abs(v.numpy() - w).max() > 1e-4
                   for v, w in zip(trainer.sides[0].model.variables, initial))
        weights = [v.numpy() for s in trainer.sides for v in s.model.variables]
        np.savez({logdir!r} + f"/b{{branches}}.npz", *weights)
    try:
        distribute.configure_threads(2, 2)
        late = "no error"
    except RuntimeError as e:
        late = str(e)
    print("RESULTS " + json.dumps(dict(pools=pools, late=late, steps=steps)))
""")


def test_threads_and_branches_in_training(tmp_path_factory, tmp_path):
  data_dir = mnist_dir(tmp_path_factory)
  script = SCRIPT.format(tests_dir=TESTS_DIR, logdir=str(tmp_path), data_dir=data_dir)
  result = run_python([sys.executable, "-c", script])
  assert result.returncode == 0, result.stderr[-3000:]
  line = [l for l in result.stdout.splitlines() if l.startswith("RESULTS ")][-1]
  results = json.loads(line[len("RESULTS ") :])
  assert results["pools"] == [1, 2] and results["steps"] == [3, 3]
  assert results["late"].startswith(
    "--intra_op_threads=2 --inter_op_threads=2: TensorFlow was initialised before"
  )
  with np.load(tmp_path / "b1.npz") as one, np.load(tmp_path / "b2.npz") as two:
    assert len(one.files) == len(two.files) > 10
    for key in one.files:
      np.testing.assert_allclose(two[key], one[key], rtol=1e-3, atol=1e-5)
