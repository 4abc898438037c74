"""The coupling network's data-dependent init, checked against numpy: after `initialize` on a
batch, both hidden ActNorms standardise that batch's activations per channel (mean 0, std 1),
the hidden one computed here from the network's own weights."""

import numpy as np
import tensorflow as tf

from glow_tf2.flows import nets


def test_initialize_standardises_both_hidden_actnorms_on_its_batch(rng):
  net = nets.CouplingNetwork(3, 16, 6, np.random.default_rng(0))
  z1 = tf.constant(rng.normal(2.0, 3.0, size=(8, 6, 6, 3)), tf.float32)
  net.initialize(z1)

  first = net.norm_in.normalize(net.conv_in(z1)).numpy()
  np.testing.assert_allclose(first.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(first.std(axis=(0, 1, 2)), 1.0, atol=1e-3)

  # The second ActNorm sits after ReLU and the per-pixel matmul: numpy from here on.
  h = np.maximum(first, 0.0) @ net.kernel_hidden.numpy()
  bias, log_scale = net.norm_hidden.bias.numpy(), net.norm_hidden.log_scale.numpy()
  second = (h + bias) * np.exp(log_scale)
  np.testing.assert_allclose(second.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(second.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
  # ... and what the network feeds its output conv is that, through a ReLU.
  np.testing.assert_allclose(net.hidden_reference(z1).numpy(), np.maximum(second, 0), atol=1e-4)


def test_a_conv3x3_names_its_kernel_after_its_default_name():
  # A checkpoint of a network built with the defaults finds its variables by these names.
  conv = nets.Conv3x3(2, 3, np.random.default_rng(0))
  assert conv.kernel.name == "conv3x3/kernel:0"


def test_a_zero_conv3x3_names_its_variables_after_its_default_name():
  # As for Conv3x3: the original's checkpoints and ours find the output conv by these names.
  conv = nets.ZeroConv3x3(2, 3)
  assert [v.name for v in (conv.kernel, conv.bias)] == [
    "zero_conv3x3/kernel:0",
    "zero_conv3x3/bias:0",
  ]
