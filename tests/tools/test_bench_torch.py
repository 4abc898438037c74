"""glow-bench's PyTorch contender (tools/bench_torch.py) is glow_tf2's Glow, layer for layer.

The strongest check loads a glow_tf2 Glow's weights (every one non-zero) into the PyTorch model
and compares the latents, log-dets, decodings and bits/dim on the same images; the others check
the PyTorch model's own mathematics (round trip, log-det against the autodiff Jacobian) and that
glow-bench times it.
"""

import dataclasses
import json
import sys

import numpy as np
import pytest
import tensorflow as tf
import torch

import glow_tf2
from glow_tf2_tools import bench_configs
from glow_tf2_tools import bench_torch
from tests import helpers

# 2 levels of 2 steps on 8x8x3: [8,8,3] -> [4,4,12] -split-> [4,4,6] -> [2,2,24]; D = 192.
TINY = glow_tf2.GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=8, permutation="lu")


def _oihw(kernel: tf.Variable) -> torch.Tensor:
  """A glow_tf2 conv kernel `[3, 3, C_in, C_out]` in PyTorch's layout `[C_out, C_in, 3, 3]`."""
  return torch.from_numpy(np.transpose(kernel.numpy(), (3, 2, 0, 1)).copy())


def _pairs(glow: glow_tf2.Glow, model: bench_torch.Glow):
  """(glow_tf2 value in PyTorch's layout, PyTorch tensor) for every weight of both models."""

  def actnorm(tf_norm, torch_norm):
    yield torch.from_numpy(tf_norm.bias.numpy()).reshape(1, -1, 1, 1), torch_norm.bias
    yield torch.from_numpy(tf_norm.logs.numpy()).reshape(1, -1, 1, 1), torch_norm.logs

  def zero_conv(tf_conv, torch_conv):
    yield _oihw(tf_conv.kernel), torch_conv.weight
    yield torch.from_numpy(tf_conv.bias.numpy()), torch_conv.bias
    yield torch.from_numpy(tf_conv.logs.numpy()).reshape(1, -1, 1, 1), torch_conv.logs

  for tf_steps, torch_steps in zip(glow.steps, model.levels, strict=True):
    for tf_step, torch_step in zip(tf_steps, torch_steps, strict=True):
      yield from actnorm(tf_step.actnorm, torch_step.actnorm)
      for name in ("p", "sign_s", "lower", "upper", "log_s"):
        value = getattr(tf_step.permutation, name).numpy()
        yield torch.from_numpy(value), getattr(torch_step.permutation, name)
      tf_net, torch_net = tf_step.coupling.network, torch_step.coupling.net
      yield _oihw(tf_net.conv_in.kernel), torch_net.conv_in.weight
      yield from actnorm(tf_net.norm_in, torch_net.norm_in)
      # glow_tf2's hidden layer is h @ K with K [in, out]; a 1x1 conv weight is K^T.
      yield (
        torch.from_numpy(tf_net.kernel_hidden.numpy().T[:, :, None, None].copy()),
        torch_net.hidden,
      )
      yield from actnorm(tf_net.norm_hidden, torch_net.norm_hidden)
      yield from zero_conv(tf_net.conv_out, torch_net.conv_out)
  for tf_split, torch_split in zip(glow.splits, model.splits, strict=True):
    yield from zero_conv(tf_split.network, torch_split.conv)
  yield from zero_conv(glow.top.network, model.top.conv)


def _load(glow, model) -> None:
  """Copies every weight of glow into model, and checks that none of model's is left out."""
  copied = set()
  with torch.no_grad():
    for value, target in _pairs(glow, model):
      assert value.shape == target.shape, (value.shape, target.shape)
      target.copy_(value)
      copied.add(id(target))
  left = [name for name, p in model.named_parameters() if id(p) not in copied]
  assert not left, f"weights not loaded: {left}"
  for module in model.modules():
    if isinstance(module, bench_torch.ActNorm):
      module.initialized = True


def _nhwc_eps(model, eps_levels) -> np.ndarray:
  """PyTorch's per-level latents `[N, c, h, w]` in glow_tf2's layout: flattened (h, w, c)."""
  return torch.cat([e.permute(0, 2, 3, 1).flatten(1) for e in eps_levels], 1).numpy()


@pytest.fixture(scope="module")
def twins():
  """A glow_tf2 tiny Glow, initialised on real images then perturbed everywhere (the zero convs
  included), and the PyTorch Glow holding its weights; plus the images."""
  images = helpers.real_images(4, TINY.image_shape, seed=3)
  glow = glow_tf2.Glow(TINY, seed=0)
  glow.initialize(glow_tf2.preprocess(images, 8, noise=False))
  helpers.perturb(glow, scale=0.05, seed=1)
  for v in glow.trainable_variables:
    assert np.count_nonzero(v.numpy()) > 0.9 * v.shape.num_elements(), v.name
  model = bench_torch.build(TINY, seed=5)
  _load(glow, model)
  return glow, model, images


def test_the_same_weights_give_the_same_latent_log_det_and_bits(twins):
  glow, model, images = twins
  x_tf = glow_tf2.preprocess(images, 8, noise=False)
  eps_tf, log_det_tf = glow.encode(x_tf)
  x_torch = bench_torch.preprocess(bench_torch.to_nchw(images), 8, noise=False)
  np.testing.assert_allclose(x_torch.permute(0, 2, 3, 1).numpy(), x_tf.numpy(), atol=1e-7)
  with torch.no_grad():
    eps_levels, log_det = model.encode_levels(x_torch)
    bits = model.bits_per_dim(x_torch)
  assert np.abs(log_det_tf.numpy()).min() > 1.0  # the log-dets are not trivially zero
  np.testing.assert_allclose(_nhwc_eps(model, eps_levels), eps_tf.numpy(), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(log_det.numpy(), log_det_tf.numpy(), rtol=1e-5, atol=1e-3)
  bits_tf = glow_tf2.bits_per_dim(glow, images, noise=False)
  np.testing.assert_allclose(bits.numpy(), bits_tf.numpy(), rtol=1e-5)


def test_the_same_weights_decode_the_same_image(twins):
  glow, model, images = twins
  eps_tf, _ = glow.encode(glow_tf2.preprocess(images, 8, noise=False))
  x_tf, log_det_tf = glow.decode(eps_tf)
  # glow_tf2's flat latent in PyTorch's layout: each level (h, w, c) -> (c, h, w).
  parts = glow.split_eps(eps_tf)
  eps = torch.cat([torch.from_numpy(p.numpy()).permute(0, 3, 1, 2).flatten(1) for p in parts], 1)
  with torch.no_grad():
    x, log_det = model.decode(eps)
  np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), x_tf.numpy(), atol=1e-4)
  np.testing.assert_allclose(log_det.numpy(), log_det_tf.numpy(), rtol=1e-5, atol=1e-3)


def test_data_dependent_init_matches_glow_tf2():
  """Both models start from the same random weights; each initialises its ActNorms on the same
  images; every weight then agrees (the ActNorms' set from the data, the rest untouched)."""
  images = helpers.real_images(8, TINY.image_shape, seed=4)
  glow = glow_tf2.Glow(TINY, seed=2)
  model = bench_torch.build(TINY)
  _load(glow, model)
  for module in model.modules():
    if isinstance(module, bench_torch.ActNorm):
      module.initialized = False
  glow.initialize(glow_tf2.preprocess(images, 8, noise=False))
  model.initialize(bench_torch.preprocess(bench_torch.to_nchw(images), 8, noise=False))
  for value, target in _pairs(glow, model):
    np.testing.assert_allclose(target.detach().numpy(), value.numpy(), rtol=1e-4, atol=1e-5)
  # The data moved every ActNorm (of the steps and of the coupling networks) away from 0.
  norms = [
    norm
    for steps in glow.steps
    for s in steps
    for norm in (s.actnorm, s.coupling.network.norm_in, s.coupling.network.norm_hidden)
  ]
  assert all(np.abs(v.numpy()).min() > 0 for n in norms for v in (n.bias, n.logs))


def _double_model(seed: int = 0):
  """The tiny PyTorch Glow in float64, initialised on real images, every weight perturbed."""
  images = helpers.real_images(4, TINY.image_shape, seed=6)
  model = bench_torch.build(TINY, seed=seed).double()
  x = bench_torch.preprocess(bench_torch.to_nchw(images), 8, noise=False).double()
  model.initialize(x)
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.05 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
  return model, x


def test_decode_inverts_encode():
  model, x = _double_model()
  with torch.no_grad():
    eps, log_det = model.encode(x)
    x_back, log_det_back = model.decode(eps)
  np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-10)
  np.testing.assert_allclose(log_det_back.numpy(), -log_det.numpy(), atol=1e-8)
  assert np.abs(log_det.numpy()).min() > 1.0


def test_log_det_is_that_of_the_jacobian():
  model, x = _double_model(seed=1)
  for i in range(2):
    image = x[i : i + 1]
    jacobian = torch.autograd.functional.jacobian(
      lambda v: model.encode(v.reshape(image.shape))[0][0], image.flatten(), vectorize=True
    )
    assert jacobian.shape == (TINY.data_dim, TINY.data_dim)
    sign, log_abs_det = torch.linalg.slogdet(jacobian)
    assert sign != 0
    with torch.no_grad():
      _, log_det = model.encode(image)
    np.testing.assert_allclose(log_det.item(), log_abs_det.item(), rtol=1e-9, atol=1e-7)


def test_bits_per_dim_is_glow_tf2s_formula():
  model, x = _double_model(seed=2)
  with torch.no_grad():
    eps, log_det = model.encode(x)
    bits = model.bits_per_dim(x).numpy()
  d = TINY.data_dim
  log_prob = -0.5 * (eps.numpy() ** 2 + np.log(2 * np.pi)).sum(1) + log_det.numpy()
  np.testing.assert_allclose(bits, -(log_prob - d * np.log(256.0)) / (d * np.log(2.0)), rtol=1e-12)


@pytest.mark.parametrize(
  "config",
  [TINY, bench_configs.CONFIGS["b"].glow_config()],
  ids=["tiny", "b"],
)
def test_parameter_count_is_glow_tf2s(config):
  glow = glow_tf2.Glow(config, seed=0)
  expected = sum(v.shape.num_elements() for v in glow.trainable_variables)
  assert bench_torch.parameter_count(bench_torch.build(config)) == expected
  if config.width == 128:
    assert expected == 1_656_852  # config b: the 1.66 M of rosinality's PyTorch Glow


def test_bad_config_is_named():
  with pytest.raises(ValueError, match="permutation must be lu or conv, got 'shuffle'"):
    bench_torch.build(dataclasses.replace(TINY, permutation="shuffle"))


def test_a_training_step_lowers_the_loss_on_its_batch():
  images = helpers.real_images(4, TINY.image_shape, seed=7)
  step, model = bench_torch.make_train_step(TINY, images, learning_rate=1e-2)
  losses = [step() for _ in range(8)]
  assert all(np.isfinite(losses))
  assert losses[-1] < losses[0] - 0.05, losses


def test_codec_decodes_its_own_encoding_to_the_images():
  images = helpers.real_images(4, TINY.image_shape, seed=8)
  encode, decode = bench_torch.make_codec(TINY, images)
  assert encode().shape == (4, TINY.data_dim)
  np.testing.assert_array_equal(decode().permute(0, 2, 3, 1).numpy(), images)


# glow-bench as a process with its --config=a shrunk to 8x8, 2 levels of 1 step, width 8: what
# is checked is that the torch rows and ratios are written, and the cost is tracing the steps.
SMOKE_DRIVER = """
import sys
from glow_tf2_tools import bench
from glow_tf2_tools.bench_configs import CONFIGS, BenchConfig
CONFIGS["a"] = BenchConfig(image_size=8, n_levels=2, depth=1, width=8, batch=4)
sys.argv = ["glow-bench", *sys.argv[1:]]
bench.run()
"""


def test_glow_bench_times_the_torch_contender(tmp_path):
  out, table = tmp_path / "bench.json", tmp_path / "bench.md"
  flags = ["--config=a", "--compare_torch", "--joint=false", "--measure_peak=false", "--reps=1"]
  flags += ["--warmup=1", "--torch_threads=1", f"--json={out}", f"--markdown={table}"]
  result = helpers.run_python([sys.executable, "-c", SMOKE_DRIVER, *flags], timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  data = json.loads(out.read_text())
  small = bench_configs.BenchConfig(
    image_size=8, n_levels=2, depth=1, width=8, batch=4
  ).glow_config()
  expected = bench_torch.parameter_count(bench_torch.build(small))
  assert data["torch_parameters"] == data["parameters"] == expected
  assert data["torch_threads"] == 1
  np.testing.assert_allclose(
    data["torch_speedup"], data["torch_train_step_ms"] / data["train_step_ms"]
  )
  for direction in ("encode", "decode"):
    np.testing.assert_allclose(
      data[f"torch_{direction}_speedup"],
      data[f"{direction}_images_per_sec"] / data[f"torch_{direction}_images_per_sec"],
    )
  text = table.read_text()
  for row in ("torch_train_step", "torch_encode_batch64", "torch_decode_batch64", "torch_speedup"):
    assert f"| {row} |" in text, row
  assert "PyTorch contender: torch 2.13.0" in text and "1 threads per op" in text
  assert "OMP_WAIT_POLICY=PASSIVE" in text


def test_glow_bench_without_torch_names_the_install_command():
  # torch made unimportable in the child: glow-bench must refuse before building anything.
  result = helpers.run_python(
    [
      sys.executable,
      "-c",
      "import sys; sys.modules['torch'] = None; from glow_tf2_tools import bench; bench.run()",
      "--config=a",
      "--compare_torch",
    ],
    timeout=120,
  )
  assert result.returncode == 1
  assert "--compare_torch needs PyTorch" in result.stderr
  assert "pip install torch==2.13.0" in result.stderr
  assert "timing" not in result.stdout
