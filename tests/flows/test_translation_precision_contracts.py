"""The small contracts of translation.py (and of glow.py's GivenLabels, which it chains) and
precision.py that their value tests left open.

Written from the survivors of a mutation run (docs/mutation.md): the bound labels' dtype, the
bijectors' names, parameters and event shapes, exact error messages (the loss scale's
contracts are in tests/train/test_loss_scale.py).
"""

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2.flows import glow as glow_lib
from glow_tf2.flows import precision

CONDITIONAL = glow_tf2.GlowConfig(
  image_shape=(8, 8, 1), n_levels=2, depth=1, width=8, permutation="lu", n_classes=3
)


def _glow(config=CONDITIONAL, name="glow_x"):
  glow = glow_tf2.Glow(config, seed=0, name=name)
  images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1), dtype=np.uint8)
  glow.initialize(glow_tf2.preprocess(images, 8, noise=False), labels=tf.constant([0, 1, 2]))
  return glow


def test_given_labels_binds_int32_labels_and_describes_itself():
  glow = _glow()
  bound = glow_lib.GivenLabels(glow, np.array([2, 0, 1], np.int64))
  assert bound.labels.dtype == tf.int32  # the class-embedding lookups take int32
  np.testing.assert_array_equal(bound.labels.numpy(), [2, 0, 1])
  assert bound.name == "glow_x_given_labels"
  assert glow_lib.GivenLabels(glow, [0], name="mine").name == "mine"
  assert bound.parameters["glow"] is glow
  np.testing.assert_array_equal(bound.parameters["labels"], [2, 0, 1])
  assert bound.forward_min_event_ndims == 1 and bound.inverse_min_event_ndims == 3


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64, tf.uint8])
def test_given_labels_take_integer_tensors_of_any_width(dtype):
  # tf.data yields int64 labels; the bound ones are the int32 of the embedding lookups.
  bound = glow_lib.GivenLabels(_glow(), tf.constant([2, 0, 1], dtype))
  assert bound.labels.dtype == tf.int32
  np.testing.assert_array_equal(bound.labels.numpy(), [2, 0, 1])


def test_given_labels_refuse_float_labels():
  with pytest.raises(
    TypeError, match="GivenLabels: labels must be integer class indices, got float32"
  ):
    glow_lib.GivenLabels(_glow(), tf.constant([1.0, 0.0]))


def test_given_labels_has_the_glows_event_shapes():
  glow = _glow()
  bound = glow_lib.GivenLabels(glow, [0, 1, 2])
  d = CONDITIONAL.data_dim
  assert bound.forward_event_shape(tf.TensorShape([d])) == glow.forward_event_shape([d])
  assert bound.forward_event_shape([d]).as_list() == [8, 8, 1]
  assert bound.inverse_event_shape([8, 8, 1]).as_list() == [d]
  np.testing.assert_array_equal(bound.forward_event_shape_tensor([d]).numpy(), [8, 8, 1])
  np.testing.assert_array_equal(bound.inverse_event_shape_tensor([8, 8, 1]).numpy(), [d])


def test_translation_is_a_chain_named_translation_with_exact_messages():
  plain = glow_tf2.GlowConfig(image_shape=(8, 8, 1), n_levels=2, depth=1, width=8)
  a, b = glow_tf2.Glow(plain, name="a"), glow_tf2.Glow(plain, name="b")
  assert glow_tf2.translation(a, b).name == "translation"
  bigger = glow_tf2.Glow(glow_tf2.GlowConfig(image_shape=(16, 16, 1), n_levels=2, depth=1))
  with pytest.raises(
    ValueError, match=r"^translation: models of different data dims \(64 vs 256\)$"
  ):
    glow_tf2.translation(a, bigger)
  with pytest.raises(ValueError, match=r"^translation: labels given, but the pair is not class-co"):
    glow_tf2.translation(a, b, labels=[0])
  c, d = _glow(name="c"), _glow(name="d")
  with pytest.raises(ValueError, match=r"^translation: a class-conditional pair needs the images'"):
    glow_tf2.translation(c, d)


def test_cast_adds_no_op_for_the_same_dtype():
  x = tf.constant([1.0, 2.0])
  assert precision.cast(x, tf.float32) is x  # float32 graphs stay exactly as they were
  y = precision.cast(x, tf.bfloat16)
  assert y.dtype == tf.bfloat16
