"""Dynamic loss scaling of float16 training (glow_tf2/train/loss_scale.py, the step in step.py).

The underflow case is the real step of the tests' tiny joint run with the objective weighted by
1e-6 (`--mle_loss_scale`, `--code_loss_scale`): the networks' float32 gradients are then about
1e-8 to 1e-5, below float16's smallest subnormal (6e-8) for most of the backward pass. Unscaled
(S = 1) every gradient of a float16 network flushes to zero; with S = 2^15 they are float32's
to within float16's rounding (under 1% of their norm; measured 0.7%).

Tolerances: float16 rounds to 11 significant bits (relative 2^-12 = 0.02% an op); a backward
pass through two levels of networks compounds that to under 1%, so 5% of the gradients' norm.
"""

import json
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.train import loop as trainer_lib
from glow_tf2.train import outputs as outputs_lib
from glow_tf2.train.loss_scale import DynamicLossScale
from tests.helpers import mnist_dir
from tests.helpers import run_python
from tests.helpers import tiny_config
from tests.train.test_distributed import TESTS_DIR
from tests.train.test_distributed import load_npz

TINY_WEIGHT = 1e-6  # the objective's weight that makes float16 gradients underflow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return mnist_dir(tmp_path_factory)


def make_trainer(logdir, data_dir, precision="mixed_float16", **overrides):
  config = tiny_config(logdir, data_dir, model={"precision": precision}, **overrides)
  problem = problems.get_problem("mnist", data_dir=data_dir, channels=1)
  return trainer_lib.Trainer(
    config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset
  )


def state(trainer, ema: bool = True) -> list[np.ndarray]:
  """Every variable a training step may move: models, EMAs (unless `ema` is False), optimizer
  slots and counts."""
  variables = []
  for side in trainer.sides:
    variables += [*side.model.variables, *side.optimizer.variables]
    variables += list(side.ema.variables) if ema else []
  return [v.numpy() for v in variables]


# The scale itself.


def test_scale_loss_and_unscale_only_read_the_scale():
  scale = DynamicLossScale(initial_scale=8.0, growth_interval=2)
  np.testing.assert_allclose(scale.scale_loss(tf.constant(1.5)).numpy(), 12.0)
  grads, finite = scale.unscale([tf.constant([8.0, 16.0]), None])
  assert bool(finite) and grads[1] is None
  np.testing.assert_allclose(grads[0].numpy(), [1.0, 2.0])
  assert float(scale.scale) == 8.0 and int(scale.good_steps) == 0
  _, finite = scale.unscale([tf.constant([1.0, np.inf]), tf.constant([np.nan])])
  assert not bool(finite)
  _, finite = scale.unscale([tf.constant([1.0]), tf.constant([np.nan])])
  assert not bool(finite)  # one bad tensor of many is enough
  assert float(scale.scale) == 8.0 and int(scale.good_steps) == 0


def test_update_doubles_after_the_growth_interval_and_halves_on_overflow():
  scale = DynamicLossScale(initial_scale=8.0, growth_interval=2)
  scale.update(True)
  assert float(scale.scale) == 8.0 and int(scale.good_steps) == 1
  scale.update(True)  # the second finite step in a row: S doubles, the count restarts
  assert float(scale.scale) == 16.0 and int(scale.good_steps) == 0
  scale.update(True)
  scale.update(False)  # an overflow halves S and restarts the count
  assert float(scale.scale) == 8.0 and int(scale.good_steps) == 0


def test_the_scale_never_falls_below_one_and_no_gradient_is_finite():
  scale = DynamicLossScale(initial_scale=2.0, growth_interval=3)
  scale.update(False)
  assert float(scale.scale) == 1.0
  scale.update(False)
  assert float(scale.scale) == 1.0  # floored at 1
  grads, finite = scale.unscale([None, None])  # nothing the loss reaches
  assert grads == [None, None] and bool(finite)


def test_loss_scale_defaults_and_variables():
  scale = DynamicLossScale()
  assert float(scale.scale) == 2.0**15
  assert scale.growth_interval == 2000 and scale.factor == 2.0
  assert scale.scale.name == "loss_scale/scale:0"
  assert scale.good_steps.name == "loss_scale/good_steps:0"
  assert scale.good_steps.dtype == tf.int64
  # Neither is trained: an optimizer given trainable_variables must never move S.
  assert scale.trainable_variables == ()


@pytest.mark.parametrize(
  "kwargs",
  [{"initial_scale": 0.0}, {"initial_scale": -1.0}, {"growth_interval": 0}, {"factor": 1.0}],
)
def test_loss_scale_refuses_bad_settings(kwargs):
  with pytest.raises(ValueError, match=r"^DynamicLossScale needs initial_scale > 0, growth_inte"):
    DynamicLossScale(**kwargs)


# The training step.


def test_only_float16_runs_have_a_loss_scale(tmp_path, data_dir):
  assert make_trainer(tmp_path / "f32", data_dir, "float32").loss_scale is None
  assert make_trainer(tmp_path / "bf16", data_dir, "mixed_bfloat16").loss_scale is None
  scale = make_trainer(tmp_path / "f16", data_dir).loss_scale
  assert float(scale.scale) == 2.0**15


def test_float16_gradients_flush_to_zero_unscaled_and_match_float32_scaled(tmp_path, data_dir):
  weight = {"mle_loss_scale": TINY_WEIGHT, "code_loss_scale": TINY_WEIGHT}
  trainers = {}
  for precision in ("float32", "mixed_float16"):
    trainer = make_trainer(tmp_path / precision, data_dir, precision, loss=weight)
    trainer.initialize()
    # Every layer off its zero init (the same noise for both), so every network has gradients.
    for side in trainer.sides:
      rng = np.random.default_rng(0)
      for v in side.model.trainable_variables:
        v.assign_add(rng.normal(0.0, 0.05, v.shape).astype(np.float32))
    trainers[precision] = trainer
  batch = next(iter(trainers["float32"].dataset("train", 16, shuffle=False, repeat=True)))
  names = [v.name for side in trainers["float32"].sides for v in side.model.trainable_variables]
  # The variables the float16 networks compute with (the rest of the flow stays float32).
  networks = [i for i, n in enumerate(names) if "coupling_network" in n or "prior_conv" in n]
  assert len(networks) >= 20, names

  def network_grads(trainer):
    grads, _, finite = trainer.steps.gradients(batch)
    return np.concatenate([grads[i].numpy().ravel() for i in networks]), finite

  want, finite = network_grads(trainers["float32"])
  assert finite is None  # float32 is not loss-scaled
  assert np.abs(want).max() < 1e-4 and np.mean(want != 0) > 0.9  # small, but not zero

  float16 = trainers["mixed_float16"]
  got, finite = network_grads(float16)  # S = 2^15, as a run starts
  assert bool(finite)
  error = np.linalg.norm(got - want) / np.linalg.norm(want)
  assert error < 0.05, error

  float16.loss_scale.scale.assign(1.0)  # what the step would compute without the scaling
  unscaled, finite = network_grads(float16)
  assert bool(finite)
  assert np.mean(unscaled == 0) > 0.99, np.mean(unscaled == 0)  # flushed to zero
  assert np.linalg.norm(unscaled - want) / np.linalg.norm(want) > 0.99


def test_an_overflowing_step_is_skipped_whole_and_the_scale_halves_then_grows(tmp_path, data_dir):
  trainer = make_trainer(tmp_path, data_dir)
  trainer.loss_scale.growth_interval = 2  # read when the step is traced
  trainer.restore_or_initialize()
  iterator = trainer.train_iterator()
  before = state(trainer)
  # S = 1e30 overflows float16 (largest 65504) in the networks' backward pass.
  trainer.loss_scale.scale.assign(1e30)
  metrics = trainer.train_step(iterator)
  assert metrics["loss_scale"] == np.float32(1e30) and metrics["loss_scale_skipped"] == 1.0
  assert np.isfinite(metrics["loss_a"]) and np.isfinite(metrics["loss_b"])
  after = state(trainer)
  for a, b in zip(before, after):
    np.testing.assert_array_equal(a, b)  # no weight, EMA, slot or optimizer count moved
  assert int(trainer.step.numpy()) == 1  # the batch is spent, as in any run
  assert float(trainer.loss_scale.scale.numpy()) == np.float32(5e29)
  assert int(trainer.loss_scale.good_steps.numpy()) == 0

  trainer.loss_scale.scale.assign(1024.0)
  weights = [v for side in trainer.sides for v in side.model.trainable_variables]
  trained = [v.numpy() for v in weights]
  metrics = trainer.train_step(iterator)
  assert metrics["loss_scale"] == 1024.0 and metrics["loss_scale_skipped"] == 0.0
  # Exactly the weights with a gradient move. On the first step the zero-initialised last layers
  # (`conv_out`, the split's `prior_conv`) hold the gradients of their own log-scales and of the
  # hidden layers before them at 0. (The EMAs are not compared: their first move, (1 - decay)
  # times a step at the warmup's smallest rate, is below float32's resolution.)
  moved = [not np.array_equal(a, v.numpy()) for a, v in zip(trained, weights)]
  held = [
    "coupling_network/" in v.name
    and "conv_out/kernel" not in v.name
    and "conv_out/bias" not in v.name
    or v.name.endswith(("conv_out/logs:0", "prior_conv/logs:0"))
    for v in weights
  ]
  assert moved == [not h for h in held], [v.name for v, m in zip(weights, moved) if m]
  assert sum(moved) >= 20
  for side in trainer.sides:
    assert int(side.optimizer.iterations.numpy()) == 1  # the skipped step did not count
  assert float(trainer.loss_scale.scale.numpy()) == 1024.0
  assert int(trainer.loss_scale.good_steps.numpy()) == 1
  trainer.train_step(iterator)  # the second finite step in a row: S doubles
  assert float(trainer.loss_scale.scale.numpy()) == 2048.0
  assert int(trainer.loss_scale.good_steps.numpy()) == 0
  assert int(trainer.step.numpy()) == 3


def test_a_resume_restores_the_scale_and_continues_bitwise(tmp_path, data_dir):
  """Steps 1-4 in one go against 1-2, a checkpoint, a new trainer, 3-4: the same bits and the
  same (S, count) after every step. With a growth interval of 3, S doubles at step 3."""

  def scale_after(trainer, iterator, steps):
    out = []
    for _ in range(steps):
      trainer.train_step(iterator)
      out.append((float(trainer.loss_scale.scale.numpy()), int(trainer.loss_scale.good_steps)))
    return out

  straight = make_trainer(tmp_path / "straight", data_dir)
  straight.loss_scale.growth_interval = 3
  straight.restore_or_initialize()
  expected = scale_after(straight, straight.train_iterator(), 4)
  assert expected[:3] == [(2.0**15, 1), (2.0**15, 2), (2.0**16, 0)], expected

  first = make_trainer(tmp_path / "resumed", data_dir)
  first.loss_scale.growth_interval = 3
  first.restore_or_initialize()
  got = scale_after(first, first.train_iterator(), 2)
  first.save()
  second = make_trainer(tmp_path / "resumed", data_dir)
  second.loss_scale.growth_interval = 3
  assert int(second.loss_scale.good_steps.numpy()) == 0
  assert second.restore_or_initialize() == 2
  assert float(second.loss_scale.scale.numpy()) == 2.0**15
  assert int(second.loss_scale.good_steps.numpy()) == 2  # restored, not the initial 0
  got += scale_after(second, second.train_iterator(2), 2)
  assert got == expected
  for a, b in zip(state(straight), state(second)):
    np.testing.assert_array_equal(a, b)


def test_a_checkpoint_without_a_scale_resumes_with_the_initial_one(tmp_path, data_dir):
  """A float32 run resumed in float16 (precision may change on resume): S starts afresh."""
  float32 = make_trainer(tmp_path, data_dir, "float32")
  float32.restore_or_initialize()
  float32.train_step(float32.train_iterator())
  float32.save()
  names = [name for name, _ in tf.train.list_variables(float32.manager.latest_checkpoint)]
  assert not any(name.startswith("loss_scale/") for name in names)
  float16 = make_trainer(tmp_path, data_dir)
  float16.loss_scale.scale.assign(3.0)
  assert float16.restore_or_initialize() == 1
  assert float(float16.loss_scale.scale.numpy()) == 3.0  # untouched by the restore
  for a, b in zip(state(float32), state(float16)):
    np.testing.assert_array_equal(a, b)


def test_the_scale_is_logged_in_the_train_records_and_tensorboard(tmp_path, data_dir):
  logdir = tmp_path / "run"
  trainer = make_trainer(
    logdir, data_dir, data={"n_train": 32, "n_test": 16}, epochs=1, n_sample=2, log_steps=1
  )
  trainer.fit()
  for key in ("A", "B"):
    with open(logdir / f"train_{key}.txt") as f:
      record = json.loads(f.readlines()[1])
    assert record["loss_scale"] == "32768.0000" and record["loss_scale_skipped"] == "0.0000"
    with open(logdir / f"test_{key}.txt") as f:
      assert "loss_scale" not in json.loads(f.readlines()[1])
  scalars = {}
  for path in logdir.glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        if value.tag.startswith("train/loss_scale"):
          scalars[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
  assert scalars == {
    ("train/loss_scale", 1): 32768.0,
    ("train/loss_scale", 2): 32768.0,
    ("train/loss_scale_skipped", 1): 0.0,
    ("train/loss_scale_skipped", 2): 0.0,
  }
  assert "loss_scale" in outputs_lib.LOSS_SCALE_STATS


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
    from tests.helpers import tiny_config
    results = {{}}
    for name, strategy in [("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
        config = tiny_config({logdir!r} + "/" + name, {data_dir!r},
                             model={{"precision": "mixed_float16"}})
        problem = problems.get_problem("mnist", data_dir={data_dir!r}, channels=1)
        trainer = trainer_lib.Trainer(config, problem, strategy, input_pipeline.make_dataset)
        trainer.restore_or_initialize()
        iterator = trainer.train_iterator()
        steps = []
        for scale in (1e30, 1024.0, 1024.0):
            trainer.loss_scale.scale.assign(scale)
            steps.append(trainer.train_step(iterator))
            if not steps[-1]["loss_scale_skipped"]:
                continue
            # The skipped step moved nothing: the weights are still the initial ones.
            same = all(np.array_equal(v.numpy(), e.numpy()) for s in trainer.sides
                       for v, e in zip(s.model.variables, s.ema.variables))
            steps[-1]["unmoved"] = float(same)
        weights = [v.numpy() for s in trainer.sides for v in s.model.variables + s.ema.variables]
        np.savez({logdir!r} + "/" + name + ".npz", *weights)
        results[name] = dict(replicas=trainer.n_replicas, steps=steps,
                             scale=float(trainer.loss_scale.scale.numpy()))
    print("RESULTS " + json.dumps(results))
""")


def test_mirrored_on_two_cpus_skips_and_applies_as_one_device(tmp_path, data_dir):
  script = MIRRORED_SCRIPT.format(tests_dir=TESTS_DIR, logdir=str(tmp_path), data_dir=data_dir)
  result = run_python([sys.executable, "-c", script])
  assert result.returncode == 0, result.stderr[-3000:]
  results = json.loads(result.stdout.split("RESULTS ", 1)[1])
  assert results["one"]["replicas"] == 1 and results["two"]["replicas"] == 2
  for name in ("one", "two"):
    steps = results[name]["steps"]
    assert [s["loss_scale_skipped"] for s in steps] == [1.0, 0.0, 0.0], name
    assert steps[0]["unmoved"] == 1.0, name
    assert results[name]["scale"] == 1024.0
  for a, b in zip(results["one"]["steps"], results["two"]["steps"]):
    for key, value in a.items():
      assert abs(b[key] - value) <= 1e-4 * abs(value), (key, value, b[key])
  one, two = load_npz(tmp_path / "one.npz"), load_npz(tmp_path / "two.npz")
  scale = max(np.max(np.abs(w)) for w in one)
  worst = max(np.max(np.abs(a - b)) for a, b in zip(one, two))
  assert worst <= 1e-4 * scale, worst
