"""One traced function for every step of flow of a structure: same numbers, one trace, no captures."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.flows import flow_step
from glow_tf2.flows import shared_trace
from tests import helpers


def _steps(n, channels=4, width=8, permutation="lu", coupling="affine", precision="float32"):
  rng = np.random.default_rng(0)
  steps = [
    flow_step.FlowStep(channels, width, permutation, coupling, rng, precision, name=f"s{i}")
    for i in range(n)
  ]
  for i, step in enumerate(steps):
    helpers.perturb(step, scale=0.3, seed=i)
  return steps


def _traces(step, method):
  variables = step.variables
  paths = shared_trace._variable_paths(step)
  key = (
    type(step),
    method,
    step.trace_key(),
    tuple((p, tuple(v.shape), v.dtype) for p, v in zip(paths, variables)),
  )
  function = shared_trace._FUNCTIONS.get(key)
  return function.experimental_get_tracing_count() if function else 0


@pytest.mark.parametrize("permutation", ["lu", "conv", "shuffle", "reverse"])
@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_each_step_computes_its_own_function_of_its_own_weights(permutation, coupling):
  steps = _steps(3, permutation=permutation, coupling=coupling)
  # A spatial size no other test uses: this test's calls are the only traces of this shape.
  x = tf.random.stateless_normal([2, 5, 3, 4], [1, 2])
  before = {m: _traces(steps[0], m) for m in ("_inverse_and_log_det", "_forward_and_log_det")}
  outputs = []
  for step in steps:
    for method in ("_inverse_and_log_det", "_forward_and_log_det"):
      expected = getattr(step, method)(x)
      got = shared_trace.call(step, method, x)
      for e, g in zip(expected, got):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-6, atol=1e-6)
    outputs.append(shared_trace.call(step, "_inverse_and_log_det", x)[0].numpy())
  # Three different weights, three different results: no step answered for another.
  assert not np.allclose(outputs[0], outputs[1]) and not np.allclose(outputs[1], outputs[2])
  # ...from one trace per direction.
  for method, count in before.items():
    assert _traces(steps[0], method) == count + 1, method


def test_gradients_reach_each_steps_own_variables():
  steps = _steps(2)
  x = tf.random.stateless_normal([2, 4, 4, 4], [3, 4])

  def loss(call):
    h, total = x, 0.0
    for step in steps:
      h, log_det = call(step, h)
      total += tf.reduce_sum(log_det)
    return total + tf.reduce_sum(h**2)

  variables = [v for s in steps for v in s.trainable_variables]
  with tf.GradientTape() as tape:
    shared = loss(lambda s, h: shared_trace.call(s, "_inverse_and_log_det", h))
  got = tape.gradient(shared, variables)
  with tf.GradientTape() as tape:
    direct = loss(lambda s, h: s._inverse_and_log_det(h))
  expected = tape.gradient(direct, variables)
  np.testing.assert_allclose(shared.numpy(), direct.numpy(), rtol=1e-6)
  for v, g, e in zip(variables, got, expected):
    assert g is not None, v.name
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-6, err_msg=v.name)


def test_a_weight_that_is_not_a_variable_of_the_module_raises():
  class Scaled(tf.Module):
    def __init__(self, scale):
      self.scale = tf.Variable(scale)
      self.offset = tf.constant([1.0])  # not a variable: traced once, it would be shared

    def trace_key(self):
      return ()

    def apply(self, x):
      return x * self.scale + tf.identity(self.offset)

  with pytest.raises(ValueError, match="not its own tf.Variables"):
    shared_trace.call(Scaled(2.0), "apply", tf.ones([3]))


def test_a_deeper_glow_traces_no_more_step_bodies():
  """The encoding's graph grows by a call per step, not by a step's ops."""

  def graph_size(depth):
    config = helpers.tiny_glow_config(depth=depth, width=12)
    glow = glow_tf2.Glow(config, seed=0)
    fn = tf.function(lambda x: glow.encode(x))
    graph = fn.get_concrete_function(tf.TensorSpec((2,) + config.image_shape, tf.float32)).graph
    own = graph.get_operations()
    calls = [op for op in own if op.type in ("PartitionedCall", "StatefulPartitionedCall")]
    bodies = {op.get_attr("f").name for op in calls}
    return len(own), len(calls), len(bodies)

  ops_2, calls_2, bodies_2 = graph_size(2)
  ops_6, calls_6, bodies_6 = graph_size(6)
  levels = helpers.tiny_glow_config().n_levels
  assert (calls_2, calls_6) == (2 * levels, 6 * levels)
  assert bodies_2 == bodies_6 == levels
  # Each extra step adds its call, its log-det's sum and, per variable, a captured handle and a
  # read: nothing of its computation (inlined, a step is ~180 ops forward alone).
  per_step = (ops_6 - ops_2) / (4 * levels)
  n_variables = len(_steps(1)[0].variables)
  assert per_step == 2 * n_variables + 2, per_step


@pytest.mark.parametrize("checkpointing", [False, True])
def test_a_glow_computes_what_its_steps_inlined_compute(monkeypatch, checkpointing):
  """Latents, log-dets, decodings and gradients of the same weights, shared or inlined."""
  config = helpers.tiny_glow_config(depth=3)
  images = helpers.real_images(4, config.image_shape)
  x = glow_tf2.preprocess(tf.constant(images), 8, noise=False)
  glow = helpers.initialized_glow(config, images, seed=0, perturb_scale=0.05)
  glow.gradient_checkpointing = checkpointing

  def run():
    with tf.GradientTape() as tape:
      eps, log_det = glow.encode(x)
      loss = tf.reduce_mean(log_det) - tf.reduce_mean(eps**2)
    grads = tape.gradient(loss, glow.trainable_variables)
    decoded, decode_log_det = glow.decode(eps)
    return [eps, log_det, decoded, decode_log_det, *grads]

  shared = run()
  monkeypatch.setattr(
    shared_trace, "call", lambda module, method, *inputs: getattr(module, method)(*inputs)
  )
  inlined = run()
  for i, (s, e) in enumerate(zip(shared, inlined)):
    scale = np.abs(e.numpy()).max()
    np.testing.assert_allclose(s.numpy(), e.numpy(), rtol=1e-5, atol=1e-6 * scale, err_msg=str(i))
