"""Evaluation on any replica split: 1, 2 and 3 logical CPU devices, test sizes that do not divide
the test batch, and a test batch (5) that divides neither 2 nor 3 replicas (it is padded to 6).

Devices are split before any TensorFlow op, so the comparison runs in a fresh process. Every
trainer gets the same weights (copied from the one-device trainer); the metrics of each replica
count must equal the one-device ones and an independent mean over exactly --n_test images.
"""

import json
import os
import sys
import textwrap

from tests.helpers import mnist_dir
from tests.helpers import run_python

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    from glow_tf2.train import distribute
    distribute.split_cpu(3)  # before any other TensorFlow op
    import numpy as np
    import tensorflow as tf
    from glow_tf2 import losses
    from glow_tf2.input import pipeline as input_pipeline
    from glow_tf2.input import problems
    from glow_tf2.train import loop as trainer_lib
    from glow_tf2.train import streams
    from tests.helpers import tiny_config

    problem = problems.get_problem("mnist", data_dir={data_dir!r}, channels=1)
    strategies = {{
        1: lambda: tf.distribute.OneDeviceStrategy("/cpu:0"),
        2: lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
        3: lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1", "/cpu:2"]),
    }}
    out = []
    reference = None
    for n_test in (49, 7, 1):
        for replicas, make in strategies.items():
            config = tiny_config({logdir!r} + f"/{{n_test}}_{{replicas}}", {data_dir!r},
                                 n_batch_test=5, n_batch_train=6,
                                 data=dict(n_test=n_test))
            trainer = trainer_lib.Trainer(config, problem, make(), input_pipeline.make_dataset)
            trainer.restore_or_initialize()
            if reference is None:
                reference = trainer
                # Move the EMA weights off their init so that every term matters.
                rng = np.random.default_rng(0)
                for side in trainer.sides:
                    for v in side.ema.variables:
                        v.assign(v + 0.01 * rng.standard_normal(v.shape).astype(v.dtype.as_numpy_dtype))
            else:
                for side, ref in zip(trainer.sides, reference.sides):
                    for v, r in zip(side.ema.variables, ref.ema.variables):
                        v.assign(r.numpy())
            metrics = trainer.evaluate()
            # Independent: bits/dim of model A, image by image in test order, the noise of
            # image j of batch b being row j of batch b's draw of 5 rows.
            images = np.concatenate([b["image_a"].numpy() for b in
                                     trainer.dataset("test", 5, shuffle=False, repeat=False)])
            bits = []
            side = trainer.sides[0]
            for b in range(0, n_test, 5):
                chunk = images[b:b + 5][:n_test - b]
                seed = streams.seed(config.seed, streams.Stream.EVAL_NOISE, 0, b // 5)
                x = losses.dequantize_with_noise(chunk, 8, seed, 0, 5)
                bits += list(side.ema.objective(x, None)["bits_x"].numpy())
            out.append(dict(n_test=n_test, replicas=trainer.n_replicas, metrics=metrics,
                            independent=float(np.mean(bits)), count=len(bits)))
    print("RESULTS " + json.dumps(out))
""")


def test_evaluation_on_1_2_3_replicas_matches_for_sizes_that_do_not_divide(
  tmp_path_factory, tmp_path
):
  data_dir = mnist_dir(tmp_path_factory)
  script = SCRIPT.format(root=ROOT, logdir=str(tmp_path), data_dir=data_dir)
  result = run_python([sys.executable, "-c", script])
  assert result.returncode == 0, result.stderr[-3000:]
  runs = json.loads(result.stdout.split("RESULTS ", 1)[1])
  assert [(r["n_test"], r["replicas"]) for r in runs] == [
    (n, k) for n in (49, 7, 1) for k in (1, 2, 3)
  ]
  for run in runs:
    assert run["count"] == run["n_test"]
    one = next(r for r in runs if r["n_test"] == run["n_test"] and r["replicas"] == 1)
    assert set(run["metrics"]) == set(one["metrics"]) >= {"loss_a", "loss_b", "code_loss"}
    for key, value in one["metrics"].items():
      assert abs(run["metrics"][key] - value) <= 1e-5 * abs(value), (run["n_test"], key)
    got = run["metrics"]["bits_per_dim_a"]
    assert abs(got - run["independent"]) <= 1e-5 * abs(got), run
  # Different sizes give different means (the count is not, e.g., always the padded one).
  assert len({round(r["metrics"]["bits_per_dim_a"], 3) for r in runs}) == 3
