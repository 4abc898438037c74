"""Property-based tests of the flows (hypothesis, as TFP's bijector tests use it).

Over random shapes, channel counts, seeds, permutations, couplings and level counts: every
layer and the whole Glow round-trips in both directions, and its log-dets in both directions
equal log|det| of the autodiff Jacobian of the map (`tests.helpers.jacobian_log_det`).

Sizes are tiny (Jacobians of at most a few hundred dimensions) and the example counts small so
the module runs in well under a minute; `derandomize=True` makes the examples the same on every
run, so CI cannot fail on a draw nobody has seen (set HYPOTHESIS_RANDOM=1 to explore new ones).
Every direction is checked on `tf.identity` of its input, so TFP's cache cannot answer a round
trip with the tensor it started from.
"""

import os

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2 import flows as gb
from tests import helpers

_RANDOM = os.environ.get("HYPOTHESIS_RANDOM") == "1"


def _settings(max_examples: int):
  return settings(
    max_examples=max_examples,
    deadline=None,
    derandomize=not _RANDOM,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
  )


LAYER_KINDS = (
  "actnorm",
  "reverse",
  "shuffle",
  "conv",
  "lu",
  "additive",
  "affine",
  "split_prior",
  "top_prior",
  "top_prior_ycond",
  "flow_step",
)
PERMUTATIONS = ("reverse", "shuffle", "conv", "lu")
COUPLINGS = ("additive", "affine")


def _layer(kind, channels, shape, seed, permutation, coupling):
  """(layer, labels) of one kind, perturbed so that no part of it is left at the identity."""
  rng = np.random.default_rng(seed)
  labels = None
  if kind == "actnorm":
    layer = gb.ActNorm(channels)
  elif kind == "reverse":
    layer = gb.ChannelPermutation.reverse(channels)
  elif kind == "shuffle":
    layer = gb.ChannelPermutation.shuffle(channels, seed=seed)
  elif kind == "conv":
    layer = gb.InvertibleConv1x1(channels, rng)
  elif kind == "lu":
    layer = gb.LUConv1x1(channels, rng)
  elif kind in COUPLINGS:
    layer = gb.Coupling(channels, 6, kind, rng)
  elif kind == "split_prior":
    layer = gb.SplitPrior(channels)
  elif kind == "top_prior":
    layer = gb.TopPrior(shape[1:], learntop=True, n_classes=0)
  elif kind == "top_prior_ycond":
    layer = gb.TopPrior(shape[1:], learntop=True, n_classes=3)
    labels = tf.constant(np.arange(shape[0]) % 3)
  else:
    layer = gb.FlowStep(channels, 6, permutation, coupling, rng)
  helpers.perturb(layer, scale=0.2, seed=seed)
  return layer, labels


@st.composite
def layer_cases(draw):
  channels = draw(st.sampled_from((2, 4, 6)))
  shape = (
    draw(st.integers(1, 3)),
    draw(st.integers(1, 4)),
    draw(st.integers(1, 4)),
    channels,
  )
  return dict(
    shape=shape,
    seed=draw(st.integers(0, 2**16)),
    permutation=draw(st.sampled_from(PERMUTATIONS)),
    coupling=draw(st.sampled_from(COUPLINGS)),
  )


# Every kind is its own test, so a derandomized draw cannot leave one out.
@pytest.mark.parametrize("kind", LAYER_KINDS)
@_settings(max_examples=3)
@given(case=layer_cases())
def test_every_layer_round_trips_and_its_log_dets_are_the_jacobians(kind, case):
  shape = case["shape"]
  layer, labels = _layer(
    kind, shape[-1], shape, case["seed"], case["permutation"], case["coupling"]
  )
  kwargs = {} if labels is None else {"labels": labels}
  rng = np.random.default_rng(case["seed"] + 1)
  x = tf.constant(rng.normal(0, 1, shape).astype(np.float32))
  z, ildj = layer._inverse_and_log_det(x, **kwargs)
  x_back = layer.forward(tf.identity(z), **kwargs)
  np.testing.assert_allclose(x_back.numpy(), x.numpy(), rtol=1e-4, atol=1e-4)
  expected = helpers.jacobian_log_det(lambda t: layer._inverse_and_log_det(t, **kwargs)[0], x)
  np.testing.assert_allclose(ildj.numpy(), expected, rtol=1e-4, atol=5e-4)
  np.testing.assert_allclose(
    layer.inverse_log_det_jacobian(tf.identity(x), **kwargs).numpy(), expected, rtol=1e-4, atol=5e-4
  )

  z2 = tf.constant(rng.normal(0, 1, shape).astype(np.float32))
  x2, fldj = layer._forward_and_log_det(z2, **kwargs)
  np.testing.assert_allclose(
    layer.inverse(tf.identity(x2), **kwargs).numpy(), z2.numpy(), rtol=1e-4, atol=1e-4
  )
  expected = helpers.jacobian_log_det(lambda t: layer._forward_and_log_det(t, **kwargs)[0], z2)
  np.testing.assert_allclose(fldj.numpy(), expected, rtol=1e-4, atol=5e-4)
  # fldj at z2 = -ildj at x2 = forward(z2): the two directions are one map.
  np.testing.assert_allclose(
    layer.inverse_log_det_jacobian(tf.identity(x2), **kwargs).numpy(),
    -fldj.numpy(),
    rtol=1e-4,
    atol=5e-4,
  )


@st.composite
def glow_cases(draw):
  n_levels = draw(st.integers(1, 3))
  channels = draw(st.sampled_from((1, 3)))
  # The smallest image the levels allow, or twice it; at most 192 dims for the Jacobian.
  size = 2**n_levels * draw(st.sampled_from((1, 2) if n_levels < 3 and channels == 1 else (1,)))
  if n_levels == 3 and channels == 3:
    channels = 1
  n_classes = draw(st.sampled_from((0, 2)))
  config = glow_tf2.GlowConfig(
    image_shape=(size, size, channels),
    n_levels=n_levels,
    depth=draw(st.integers(1, 2)),
    width=draw(st.sampled_from((4, 8))),
    permutation=draw(st.sampled_from(PERMUTATIONS)),
    coupling=draw(st.sampled_from(COUPLINGS)),
    learntop=draw(st.booleans()),
    n_classes=n_classes,
    n_bits_x=8,
  )
  return config, draw(st.integers(0, 2**16))


@_settings(max_examples=4)
@given(case=glow_cases())
def test_glow_round_trips_and_its_log_det_is_the_jacobians(case):
  config, seed = case
  rng = np.random.default_rng(seed)
  glow = glow_tf2.Glow(config, seed=seed)
  # Initialise on smooth noise around real-image statistics (a continuous, full-rank batch;
  # tiny real crops can hold constant channels, whose ActNorm scale of 1e6 ruins float32).
  init = rng.uniform(-0.5, 0.5, (32,) + config.image_shape).astype(np.float32)
  glow.initialize(tf.constant(init))
  helpers.perturb(glow, scale=0.05, seed=seed)
  n = 2
  labels = tf.constant(np.arange(n) % 2) if config.n_classes else None
  x = tf.constant(rng.uniform(-0.5, 0.5, (n,) + config.image_shape).astype(np.float32))

  eps, ildj = glow.encode(x, labels=labels)
  x_back = glow.forward(tf.identity(eps), labels=labels)
  np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=2e-4)
  expected = helpers.jacobian_log_det(lambda t: glow.encode(t, labels=labels)[0], x)
  np.testing.assert_allclose(ildj.numpy(), expected, rtol=1e-3, atol=2e-2)

  e2 = tf.constant(rng.normal(0, 0.7, (n, config.data_dim)).astype(np.float32))
  x2, fldj = glow.decode(e2, labels=labels)
  np.testing.assert_allclose(
    glow.inverse(tf.identity(x2), labels=labels).numpy(), e2.numpy(), rtol=1e-3, atol=1e-3
  )
  # decode maps [N, D] to [N, H, W, C]: the Jacobian helper wants one tensor shape in and out.
  expected = helpers.jacobian_log_det(
    lambda t: tf.reshape(glow.decode(tf.reshape(t, [n, -1]), labels=labels)[0], t.shape),
    tf.reshape(e2, (n,) + config.image_shape),
  )
  np.testing.assert_allclose(fldj.numpy(), expected, rtol=1e-3, atol=2e-2)
  # The density it defines: log p(x) = log N(eps; 0, I) + ildj, through TFP's distribution too.
  dist = glow.distribution(labels=labels)
  log_prob = -0.5 * (eps.numpy().astype(np.float64) ** 2 + np.log(2 * np.pi)).sum(-1)
  np.testing.assert_allclose(
    dist.log_prob(tf.identity(x)).numpy(), log_prob + ildj.numpy(), rtol=1e-5, atol=1e-3
  )
