"""The squeeze on a non-square image with a batch, and its event shapes with batch dimensions,
static and as tensors."""

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2 import flows as gb


# With 4 rows a reshape that splits the rows wrongly can still land every entry in its place;
# 16 rows (8 row pairs) leave it no such luck.
@pytest.mark.parametrize("shape", [(2, 4, 6, 3), (1, 16, 4, 2)])
def test_squeeze_of_a_non_square_batch_is_glows_order(shape):
  n, h, w, channels = shape
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  layer = gb.Squeeze()
  z = layer.inverse(x).numpy()
  assert z.shape == (n, h // 2, w // 2, 4 * channels)
  for c in range(channels):
    for dy in range(2):
      for dx in range(2):
        np.testing.assert_array_equal(z[..., c * 4 + dy * 2 + dx], x[:, dy::2, dx::2, c])
  np.testing.assert_array_equal(layer.forward(tf.constant(z)).numpy(), x)
  for log_det in (layer.inverse_log_det_jacobian(x), layer.forward_log_det_jacobian(z)):
    assert log_det.shape == (n,)
    np.testing.assert_array_equal(log_det.numpy(), np.zeros(n))


def test_squeeze_event_shapes_keep_batch_dimensions():
  layer = gb.Squeeze()
  assert layer.inverse_event_shape([5, 4, 6, 3]) == [5, 2, 3, 12]
  assert layer.forward_event_shape([5, 2, 3, 12]) == [5, 4, 6, 3]
  assert layer.inverse_event_shape([4, 6, 3]) == [2, 3, 12]
  assert layer.forward_event_shape([2, 3, 12]) == [4, 6, 3]
  for shape, expected in (([5, 4, 6, 3], [5, 2, 3, 12]), ([4, 6, 3], [2, 3, 12])):
    got = layer.inverse_event_shape_tensor(tf.constant(shape)).numpy()
    np.testing.assert_array_equal(got, expected)
    back = layer.forward_event_shape_tensor(tf.constant(expected)).numpy()
    np.testing.assert_array_equal(back, shape)


def test_squeeze_keeps_the_dtype_of_its_input_in_the_log_det():
  # No weights: float64 images pass through, and the zero log-det comes in their dtype.
  layer = gb.Squeeze()
  x = np.random.default_rng(1).normal(size=(2, 4, 4, 1))
  assert layer.inverse(x).dtype == tf.float64
  assert layer.inverse_log_det_jacobian(x).dtype == tf.float64
  z = np.random.default_rng(2).normal(size=(2, 2, 2, 4))
  assert layer.forward_log_det_jacobian(z).dtype == tf.float64
