"""Gradient checkpointing (`Glow(gradient_checkpointing=True)`): the same loss and gradients as the
plain encoding, and every step of flow really re-run in the backward pass.

The memory it saves is measured by the benchmark (`tools/bench.py --memory`,
`tools/bench_train.py`), not here.
"""

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.flows import shared_trace
from tests import helpers


def _pair(config, images, seed, **options):
  """(plain, checkpointed): two Glows of one config with the same (perturbed) weights."""
  plain = helpers.initialized_glow(config, images, seed, perturb_scale=0.05)
  checkpointed = glow_tf2.Glow(config, seed=seed, gradient_checkpointing=True, **options)
  for a, b in zip(checkpointed.variables, plain.variables):
    a.assign(b)
  return plain, checkpointed


def _loss_and_grads(glow, x, labels):
  """Mean negative log-density of continuous x and its gradient by every trainable variable
  and by x itself (what flows back through each checkpointed step's input)."""
  with tf.GradientTape() as tape:
    tape.watch(x)
    eps, log_det = glow.encode(x, labels=labels)
    log_prior = -0.5 * tf.reduce_sum(eps**2, -1)
    loss = -tf.reduce_mean(log_prior + log_det)
  return loss, tape.gradient(loss, [x] + list(glow.trainable_variables))


@pytest.mark.parametrize(
  "overrides, branches",
  [
    ({}, 1),  # LU 1x1 convs (ActNorm folded in), affine couplings, learnt top prior
    ({"permutation": "shuffle", "coupling": "additive"}, 1),  # the unfolded mixing path
    ({"n_classes": 3, "depth": 2}, 2),  # class-conditional top prior, two sub-batches
  ],
)
def test_checkpointed_loss_and_gradients_equal_the_plain_ones(overrides, branches):
  config = helpers.tiny_glow_config(**overrides)
  images = helpers.real_images(6, config.image_shape, seed=1)
  plain, checkpointed = _pair(config, images, seed=2, branches=branches)
  x = glow_tf2.preprocess(tf.constant(images), 8, noise=False)
  labels = tf.constant(np.arange(6) % 3) if config.n_classes else None
  fn = tf.function(_loss_and_grads)  # graph mode: where the known recompute_grad issues live
  loss_a, grads_a = fn(plain, x, labels)
  loss_b, grads_b = fn(checkpointed, x, labels)
  np.testing.assert_allclose(loss_b.numpy(), loss_a.numpy(), rtol=1e-6)
  assert len(grads_b) == 1 + len(plain.trainable_variables)
  names = ["x"] + [v.name for v in plain.trainable_variables]
  for name, ga, gb in zip(names, grads_a, grads_b):
    assert gb is not None, name
    ga, gb = tf.convert_to_tensor(ga).numpy(), tf.convert_to_tensor(gb).numpy()
    # Every gradient is non-trivial, so equality is not that of two zeros.
    assert np.abs(ga).max() > 0, name
    np.testing.assert_allclose(gb, ga, rtol=1e-4, atol=1e-6 * np.abs(ga).max(), err_msg=name)


def test_every_step_is_run_again_by_the_backward_pass(monkeypatch):
  config = helpers.tiny_glow_config(depth=2)
  images = helpers.real_images(4, config.image_shape)
  x = glow_tf2.preprocess(tf.constant(images), 8, noise=False)
  calls = []
  original = shared_trace.call

  def counted(module, method, *inputs):
    calls.append((module.name, method))
    return original(module, method, *inputs)

  monkeypatch.setattr(shared_trace, "call", counted)
  for checkpointing, passes in ((False, 1), (True, 2)):
    glow = glow_tf2.Glow(config, seed=0, gradient_checkpointing=checkpointing)
    calls.clear()
    with tf.GradientTape() as tape:
      eps, log_det = glow.encode(x)
      loss = tf.reduce_mean(log_det) + tf.reduce_mean(eps)
    assert len(calls) == config.n_levels * config.depth
    tape.gradient(loss, glow.trainable_variables)
    # Eagerly, the recomputation happens when the gradient is taken: once more per step.
    assert {method for _, method in calls} == {"_inverse_and_log_det"}
    assert len(set(calls)) == config.n_levels * config.depth
    assert len(calls) == passes * config.n_levels * config.depth
