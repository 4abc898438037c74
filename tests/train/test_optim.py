"""Glow's Adamax and Adam (`optim.Adamax`, `optim.Adam`) against their updates written out in numpy."""

import json
import os
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.train import optim
from tests.helpers import operations
from tests.helpers import run_python

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Glow's beta2 = 1 - 1 / (steps_per_epoch * polyak_epochs), here for 50 steps per epoch.
BETA1, BETA2, EPS = 0.9, 1.0 - 1.0 / 50, 1e-8


def glow_adamax(w0, grads, lrs, beta1=BETA1, beta2=BETA2, eps=EPS):
  """Glow's optim.adamax in float64: the weights after each update t = 1, 2, ..."""
  w = np.array(w0, np.float64)
  m = np.zeros_like(w)
  u = np.zeros_like(w)
  out = []
  for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
    alpha_t = lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    m = beta1 * m + (1.0 - beta1) * g
    u = np.maximum(beta2 * u, np.abs(g))
    w = w - alpha_t * m / (u + eps)
    out.append(w.copy())
  return out


def adam(w0, grads, lrs, beta1=BETA1, beta2=BETA2, eps=EPS):
  """The bias-corrected Adam of Kingma and Ba (and Glow's optim.adam) in float64."""
  w = np.array(w0, np.float64)
  m = np.zeros_like(w)
  v = np.zeros_like(w)
  out = []
  for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
    alpha_t = lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g**2
    w = w - alpha_t * m / (np.sqrt(v) + eps)
    out.append(w.copy())
  return out


UPDATES = {"adamax": glow_adamax, "adam": adam}


def _grads(n_steps, shape, seed=0):
  rng = np.random.default_rng(seed)
  # Gradients whose size changes over the steps, so the max in u matters both ways.
  return [rng.normal(0.0, 1.0 + 2.0 * (t % 3), shape) for t in range(n_steps)]


@pytest.mark.parametrize("name", ["adamax", "adam"])
def test_update_matches_numpy_with_warmup_in_tf_function(name):
  shape = (3, 4)
  w0 = np.random.default_rng(1).normal(size=shape)
  grads = _grads(8, shape)
  schedule = optim.LinearWarmup(1e-2, warmup_steps=5)
  opt = optim.make_optimizer(name, schedule, BETA1, BETA2)
  var = tf.Variable(w0.astype(np.float32))

  @tf.function
  def step(g):
    opt.apply_gradients([(g, var)])

  got = []
  for g in grads:
    step(tf.constant(g, tf.float32))
    got.append(var.numpy())
  lrs = [1e-2 * min(1.0, (t + 1) / 5) for t in range(len(grads))]
  expected = UPDATES[name](w0, grads, lrs)
  for t, (e, a) in enumerate(zip(expected, got), start=1):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7, err_msg=f"update {t}")
  if name == "adam":
    return
  # Keras's own Adamax (no sqrt(1 - beta2^t)) is far from it: its first step is sqrt(50)x larger.
  keras_first = w0 - 1e-2 * 0.2 * (1 - BETA1) * grads[0] / ((1 - BETA1) * (np.abs(grads[0]) + EPS))
  first_glow = np.abs(expected[0] - w0)
  np.testing.assert_allclose(np.abs(keras_first - w0) / first_glow, np.sqrt(50.0), rtol=1e-4)


def test_adamax_keeps_keras_slots_and_config():
  opt = optim.make_optimizer("adamax", 1e-3, BETA1, BETA2)
  assert isinstance(opt, optim.Adamax) and (opt.beta_1, opt.beta_2) == (BETA1, BETA2)
  var = tf.Variable(tf.ones([2]))
  opt.apply_gradients([(tf.constant([0.5, -2.0]), var)])
  # One step: |delta| = lr * sqrt(1 - beta2) for every element (m / u = sign(g) after one step).
  np.testing.assert_allclose(
    var.numpy(), 1.0 - 1e-3 * np.sqrt(1 - BETA2) * np.array([1.0, -1.0]), rtol=1e-6
  )
  config = opt.get_config()
  assert optim.Adamax.from_config(config).beta_2 == BETA2


def test_adam_equals_keras_adam():
  # The fused op is Keras's Adam, not only the textbook's: the same weights to float32 rounding.
  w0 = np.random.default_rng(3).normal(size=(5, 2)).astype(np.float32)
  grads = _grads(6, (5, 2), seed=4)
  ours, theirs = tf.Variable(w0), tf.Variable(w0)
  fused = optim.make_optimizer("adam", 1e-2, BETA1, BETA2)
  keras_adam = keras.optimizers.Adam(1e-2, beta_1=BETA1, beta_2=BETA2, epsilon=EPS)
  for g in grads:
    fused.apply_gradients([(tf.constant(g, tf.float32), ours)])
    keras_adam.apply_gradients([(tf.constant(g, tf.float32), theirs)])
  np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
  assert isinstance(fused, keras.optimizers.Adam)
  with pytest.raises(ValueError, match="AMSGrad"):
    optim.Adam(1e-3, amsgrad=True)


@pytest.mark.parametrize("name", ["adamax", "adam"])
def test_one_fused_op_per_variable_and_the_scalars_once(name):
  variables = [tf.Variable(tf.fill([i + 1, 2], float(i))) for i in range(12)]
  opt = optim.make_optimizer(name, optim.LinearWarmup(1e-3, 4), BETA1, BETA2)
  opt.build(variables)

  @tf.function(autograph=False)
  def step(grads):
    opt.apply_gradients(zip(grads, variables))

  graph = step.get_concrete_function([tf.ones_like(v) for v in variables]).graph
  types = [op.type for op in operations(graph)]
  fused = {"adamax": "ResourceApplyAdaMax", "adam": "ResourceApplyAdam"}[name]
  assert types.count(fused) == len(variables)
  # beta1^t and beta2^t once for the apply, not once per variable as Keras's update builds them,
  # and Adamax's sqrt(1 - beta2^t) once too.
  assert types.count("Pow") == 2
  assert types.count("Sqrt") == (1 if name == "adamax" else 0)


@pytest.mark.parametrize("name", ["adamax", "adam"])
def test_each_apply_uses_its_own_update_count(name):
  # A constant rate is one Keras variable for every apply, so only `apply` forgetting the
  # scalars makes a second apply (eager, or twice in one trace) use t = 2 and not t = 1's.
  w0 = np.array([0.3, -0.7, 1.1])
  grads = _grads(4, (3,), seed=5)
  expected = UPDATES[name](w0, grads, [1e-2] * 4)
  eager_var = tf.Variable(w0.astype(np.float32))
  eager = optim.make_optimizer(name, 1e-2, BETA1, BETA2)
  for g in grads:
    eager.apply_gradients([(tf.constant(g, tf.float32), eager_var)])
  np.testing.assert_allclose(eager_var.numpy(), expected[-1], rtol=1e-5, atol=1e-7)

  traced_var = tf.Variable(w0.astype(np.float32))
  traced = optim.make_optimizer(name, 1e-2, BETA1, BETA2)

  @tf.function
  def two_updates(g1, g2):
    traced.apply_gradients([(g1, traced_var)])
    traced.apply_gradients([(g2, traced_var)])

  for g1, g2 in (grads[:2], grads[2:]):
    two_updates(tf.constant(g1, tf.float32), tf.constant(g2, tf.float32))
  np.testing.assert_allclose(traced_var.numpy(), expected[-1], rtol=1e-5, atol=1e-7)


MIRRORED = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {repo!r})
    from glow_tf2.train import distribute
    distribute.split_cpu(2)
    import numpy as np
    import tensorflow as tf
    from glow_tf2.train import optim
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    grads = np.asarray({grads!r}, np.float32)
    with strategy.scope():
        var = tf.Variable(np.asarray({w0!r}, np.float32))
        opt = optim.make_optimizer({name!r}, 1e-2, {beta1!r}, {beta2!r})
        opt.build([var])  # as the trainer does: slots exist before the first replica step

    @tf.function
    def step(g):
        def replica_fn(g):
            # Each replica holds the same gradient scaled by its id + 1; their mean is 1.5 g.
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            local = g * tf.cast(rid + 1, tf.float32)
            ctx = tf.distribute.get_replica_context()
            mean = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, local)
            opt.apply_gradients([(mean, var)])
        strategy.run(replica_fn, args=(g,))

    out = []
    for g in grads:
        step(tf.constant(g))
        out.append([v.numpy().tolist() for v in var.values])
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.parametrize("name", ["adamax", "adam"])
def test_update_under_mirrored_strategy(name):
  w0 = [0.5, -1.0, 2.0]
  grads = [g.tolist() for g in _grads(4, (3,), seed=2)]
  script = MIRRORED.format(repo=REPO, grads=grads, w0=w0, beta1=BETA1, beta2=BETA2, name=name)
  result = run_python([sys.executable, "-c", script], timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
  got = json.loads(line[len("RESULT ") :])
  expected = UPDATES[name](w0, [1.5 * np.asarray(g) for g in grads], [1e-2] * len(grads))
  for t, (e, replicas) in enumerate(zip(expected, got), start=1):
    assert len(replicas) == 2
    for copy in replicas:
      np.testing.assert_allclose(copy, e, rtol=1e-5, atol=1e-7, err_msg=f"update {t}")


def test_the_warm_start_switch_warms_the_rate_up_again():
  schedule = optim.LinearWarmup(1e-3, warmup_steps=4, again_at=10)
  got = [float(schedule(step)) for step in range(16)]
  # Once from 0 (steps 0-3), full rate to the switch, then again from the switch (10-13).
  expected = [1e-3 * min(1.0, (s + 1) / 4) for s in range(10)]
  expected += [1e-3 * min(1.0, (s - 10 + 1) / 4) for s in range(10, 16)]
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  assert got[9] == pytest.approx(1e-3) and got[10] == pytest.approx(2.5e-4)
  # An optimizer first stepped at the switch (the coupled prior's) counts from 0: one warmup.
  assert float(schedule(0)) == pytest.approx(2.5e-4)
  assert schedule.get_config() == {
    "lr": 1e-3,
    "warmup_steps": 4.0,
    "again_at": 10,
    "lr_after": 1e-3,
  }
  # --joint_lr: the second warmup goes to its own peak.
  lower = optim.LinearWarmup(1e-3, warmup_steps=4, again_at=10, lr_after=2e-4)
  got = [float(lower(step)) for step in (3, 9, 10, 12, 13, 40)]
  np.testing.assert_allclose(got, [1e-3, 1e-3, 5e-5, 1.5e-4, 2e-4, 2e-4], rtol=1e-6)
  no_warmup = optim.LinearWarmup(1e-3, warmup_steps=0, again_at=10, lr_after=2e-4)
  assert [float(no_warmup(s)) for s in (0, 9, 10, 11)] == pytest.approx([1e-3, 1e-3, 2e-4, 2e-4])
