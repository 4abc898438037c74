"""The whole Glow where tests/flows/test_glow.py does not look: its defaults and record, batch
shapes of rank 2, a branched model on a batch size unknown when tracing, event shapes as tensors,
and the class-conditional distribution's log-density against its formula."""

import math

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.flows import glow as glow_lib
from tests import helpers

CONFIG = helpers.tiny_glow_config(n_classes=3)
D = CONFIG.data_dim


def _glow(**options):
  glow = glow_tf2.Glow(CONFIG, seed=0, **options)
  helpers.perturb(glow, scale=0.05)
  return glow


def _x(n, seed=0):
  return (
    np.random.default_rng(seed).uniform(-0.5, 0.5, (n,) + CONFIG.image_shape).astype(np.float32)
  )


def test_glow_defaults_and_record():
  glow = glow_tf2.Glow(CONFIG, seed=4)
  # Checkpointing and branches are opt-in execution options: the default keeps activations and
  # runs one branch.
  assert glow.gradient_checkpointing is False
  assert glow.branches == 1
  assert glow.name == "glow"
  assert glow.parameters["seed"] == 4 and glow.parameters["config"] == CONFIG
  assert len(glow.steps) == 2 and all(len(level) == 1 for level in glow.steps)
  assert len(glow.splits) == 1
  assert glow.top.shape == CONFIG.level_shapes[-1]


def test_rank_two_batch_shapes_encode_and_decode_row_by_row():
  glow = _glow()
  labels = np.array([[0, 1, 2], [2, 1, 0]])
  x = _x(6).reshape((2, 3) + CONFIG.image_shape)
  eps, log_det = glow.encode(x, labels=labels)
  assert eps.shape == (2, 3, D) and log_det.shape == (2, 3)
  flat_eps, flat_log_det = glow.encode(x.reshape((6,) + CONFIG.image_shape), labels=labels.ravel())
  np.testing.assert_allclose(eps.numpy().reshape(6, D), flat_eps.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(log_det.numpy().ravel(), flat_log_det.numpy(), rtol=1e-5, atol=1e-4)
  back, fldj = glow.decode(eps, labels=labels)
  assert back.shape == (2, 3) + CONFIG.image_shape and fldj.shape == (2, 3)
  np.testing.assert_allclose(back.numpy(), x, atol=1e-4)
  np.testing.assert_allclose(fldj.numpy(), -log_det.numpy(), rtol=1e-4, atol=1e-3)


def test_branches_with_a_batch_size_unknown_when_tracing_run_as_one():
  plain = _glow()
  branched = glow_tf2.Glow(CONFIG, seed=0, branches=3)
  for a, b in zip(branched.variables, plain.variables):
    a.assign(b)
  spec = [tf.TensorSpec((None,) + CONFIG.image_shape), tf.TensorSpec([None], tf.int32)]
  encode = tf.function(lambda x, y: branched.encode(x, labels=y), input_signature=spec)
  x, labels = _x(4, seed=1), np.array([0, 1, 2, 0], np.int32)
  eps, log_det = encode(x, labels)
  expected_eps, expected_log_det = plain.encode(x, labels=labels)
  np.testing.assert_allclose(eps.numpy(), expected_eps.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(log_det.numpy(), expected_log_det.numpy(), rtol=1e-5, atol=1e-4)


def test_event_shapes_static_and_as_tensors_keep_the_batch_shape():
  glow = glow_tf2.Glow(CONFIG, seed=0)
  np.testing.assert_array_equal(glow.forward_event_shape_tensor([5, D]).numpy(), [5, 8, 8, 1])
  np.testing.assert_array_equal(glow.inverse_event_shape_tensor([5, 8, 8, 1]).numpy(), [5, D])
  assert glow.forward_event_shape([2, 5, D]).as_list() == [2, 5, 8, 8, 1]
  assert glow.inverse_event_shape([2, 5, 8, 8, 1]).as_list() == [2, 5, D]
  dist = glow.distribution(labels=tf.constant([0, 1]))
  assert dist.event_shape == CONFIG.image_shape
  np.testing.assert_array_equal(dist.event_shape_tensor().numpy(), CONFIG.image_shape)


def test_conditional_log_prob_is_the_change_of_variables():
  glow = _glow()
  labels = tf.constant([2, 0, 1])
  x = _x(3, seed=2)
  eps, log_det = glow.encode(x, labels=labels)
  eps = eps.numpy().astype(np.float64)
  expected = -0.5 * (eps**2).sum(-1) - 0.5 * D * math.log(2 * math.pi) + log_det.numpy()
  got = glow.distribution(labels=labels).log_prob(x).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)
  other = glow.distribution(labels=tf.constant([0, 1, 2])).log_prob(tf.identity(x)).numpy()
  assert np.abs(other - got).min() > 1e-3  # the labels are the ones bound


def test_distribution_transforms_by_the_glow_itself_or_by_it_given_labels():
  glow = _glow()
  assert glow.distribution().bijector is glow
  bound = glow.distribution(labels=[2, 0, 1]).bijector
  assert isinstance(bound, glow_lib.GivenLabels) and bound.glow is glow
  np.testing.assert_array_equal(bound.labels.numpy(), [2, 0, 1])


def test_glow_is_a_non_affine_bijector_from_vectors_to_images():
  glow = glow_tf2.Glow(CONFIG, seed=0)
  assert (glow.forward_min_event_ndims, glow.inverse_min_event_ndims) == (1, 3)
  assert glow.is_constant_jacobian is False
  with pytest.raises(NotImplementedError, match="non-affine"):
    glow.distribution().mean()  # not decode(0): a flow's mean has no closed form


def test_split_eps_keeps_a_rank_two_batch_shape():
  glow = glow_tf2.Glow(CONFIG, seed=0)
  eps = np.random.default_rng(3).normal(size=(2, 3, D)).astype(np.float32)
  blocks = glow.split_eps(eps)
  assert [tuple(b.shape) for b in blocks] == [(2, 3) + s for s in CONFIG.eps_shapes]
  # Each level's block, flattened row-major, is its slice of eps, finest level first.
  flat = np.concatenate([b.numpy().reshape(2, 3, -1) for b in blocks], axis=-1)
  np.testing.assert_array_equal(flat, eps)


@pytest.mark.parametrize("n_classes", [3, 0])
def test_branches_split_a_batch_known_when_tracing_into_sub_batches(n_classes):
  # Branches only schedule a pass, so the results of test_glow.py cannot show whether the batch
  # was split at all: the sub-batches each pass receives do. 5 images in 3 branches run as
  # 2 + 2 + 1, with their labels split alike (or none, for a model without classes).
  config = helpers.tiny_glow_config(n_classes=n_classes)
  glow = glow_tf2.Glow(config, seed=0, branches=3)
  seen = []
  for name in ("_encode_batch", "_decode_batch"):

    def record(values, labels, name=name, run=getattr(glow, name)):
      seen.append((name, values.shape[0], None if labels is None else labels.numpy().tolist()))
      return run(values, labels)

    setattr(glow, name, record)
  labels = tf.constant([0, 1, 2, 0, 1]) if n_classes else None
  eps, _ = glow.encode(_x(5), labels=labels)
  glow.decode(eps, labels=labels)
  parts = [[0, 1], [2, 0], [1]] if n_classes else [None, None, None]
  expected = [
    (name, n, part)
    for name in ("_encode_batch", "_decode_batch")
    for n, part in zip([2, 2, 1], parts)
  ]
  assert seen == expected


def test_every_variable_is_named_by_its_level_and_layer():
  # A non-finite save names the bad variables (train/loop.py): a name must say where it lives.
  names = [v.name for v in glow_tf2.Glow(CONFIG, seed=0).variables]
  assert len(set(names)) == len(names)
  assert {n.split("/")[1] for n in names} == {
    "level0_step0",
    "level1_step0",
    "level0_split",
    "top_prior",
  }
  assert all(n.startswith("glow/") for n in names)


def test_every_layer_is_built_in_the_configs_precision():
  glow = glow_tf2.Glow(helpers.tiny_glow_config(n_classes=3, precision="mixed_bfloat16"), seed=0)
  layers = [*(step for level in glow.steps for step in level), *glow.splits, glow.top]
  assert [layer.parameters["precision"] for layer in layers] == ["mixed_bfloat16"] * 4
  assert glow.top.network.compute_dtype == tf.bfloat16  # the learnt top's conv
