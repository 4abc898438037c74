"""glow-bench's PyTorch contender: glow_tf2's Glow, layer for layer, in plain eager PyTorch.

glow-bench times this model alternating with glow_tf2's in one process (`--compare_torch`), so
the ratio compares two implementations of ONE architecture. It is written the way PyTorch Glow
repositories are written: one `nn.Module` per layer (tools/bench_torch_model.py, which gives
the model's mathematics), channels-first (NCHW), eager mode, autograd, `torch.optim.Adam`. No
`torch.compile` and no TorchScript: such repositories run eager, and so does this contender (a
compiled variant is not offered).

Here is what glow-bench drives: the threads, the images in and out and the timed step. The loss
is glow_tf2's bits/dim (`Glow.bits_per_dim`) on
x = floor(image / 2^(8 - n_bits)) / 2^n_bits - 0.5 + U(0, 2^-n_bits), and Adam with
glow_tf2's (Keras's) epsilon of 1e-7 and `fused=True`: PyTorch's fastest CPU Adam, one kernel
over all 345 parameter tensors of config b (2.7 ms an update, against 9 ms with `foreach=True`
and 14 ms with the default per-tensor loop, measured here at one thread).

Matched to glow_tf2: every layer's function, its parameters (the same names, counts and, up to
layout, values: `tests/tools/test_bench_torch.py` loads a glow_tf2 Glow's weights and compares
the latents and log-dets), the order of squeeze, split halves and priors, the loss.
What differs, and is what the benchmark measures:
- layout: NCHW activations, so a weight `[3, 3, C_in, C_out]` of glow_tf2 is `[C_out, C_in, 3,
  3]` here, and the flat latent is each level's eps flattened as (C, H, W) (glow_tf2: (H, W, C));
  the same numbers in another order, the same density;
- glow_tf2 folds every ActNorm into the weights of the layer before it and computes the edge
  channel's response once per call instead of concatenating it to every activation; this model
  runs the layers as bench_torch_model.py writes them, as PyTorch Glows do. Same function, more
  passes over memory;
- the dequantisation noise comes from PyTorch's generator, not TensorFlow's.
Not supported (glow-bench never asks for them): the `reverse` and `shuffle` permutations and
class-conditional priors.
"""

import numpy as np
import torch
from torch import nn

from glow_tf2_tools.bench_torch_model import ActNorm  # noqa: F401  (the tests' name for it)
from glow_tf2_tools.bench_torch_model import Glow


def configure_threads(threads: int) -> None:
  """PyTorch's threads per op (0 leaves its default, one per physical core), denormals flushed.

  Eager PyTorch runs one op at a time, so threads per op is its only way to use several cores;
  inter-op threads only serve `torch.jit.fork`, which this model does not use.

  Denormal floats are flushed to zero, as TensorFlow does in its own threads: this Glow's
  near-zero early activations and weights otherwise run through the CPU's slow denormal path
  (a PyTorch Glow's encode took 2.2x as long without the flush on this machine), and the
  comparison would measure that rather than the implementation.
  """
  torch.set_flush_denormal(True)
  if threads > 0:
    torch.set_num_threads(threads)


def threads() -> int:
  """PyTorch's threads per op now."""
  return torch.get_num_threads()


def build(config, seed: int = 0) -> Glow:
  """The PyTorch Glow of a `glow_tf2.GlowConfig` (image_shape, n_levels, depth, width,
  permutation, coupling, learntop, n_bits_x)."""
  return Glow(config, seed=seed)


def parameter_count(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())


def to_nchw(images: np.ndarray) -> torch.Tensor:
  """uint8 `[N, H, W, C]` (numpy) -> uint8 `[N, C, H, W]` (torch, contiguous)."""
  return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def preprocess(images: torch.Tensor, n_bits_x: int = 8, noise: bool = True) -> torch.Tensor:
  """uint8 images -> float32 in [-0.5, 0.5]: uniform dequantisation noise, or mid-bin."""
  n_bins = 2.0**n_bits_x
  x = images.float()
  if n_bits_x < 8:
    x = torch.floor(x / 2.0 ** (8 - n_bits_x))
  x = x / n_bins - 0.5
  if not noise:
    return x + 0.5 / n_bins
  return x + torch.rand_like(x) / n_bins


def postprocess(x: torch.Tensor, n_bits_x: int = 8) -> torch.Tensor:
  """Continuous x -> uint8 images, the level k = floor((x + 0.5) n_bins) clipped to 0..n_bins-1."""
  n_bins = 2.0**n_bits_x
  k = torch.clamp(torch.floor((x + 0.5) * n_bins), 0.0, n_bins - 1.0)
  return (k * (256.0 / n_bins)).to(torch.uint8)


def make_train_step(config, images: np.ndarray, seed: int = 0, learning_rate: float = 1e-4):
  """(step, model): `step()` runs one Adam step on the fixed uint8 batch `[N, H, W, C]` —
  preprocess with noise, mean bits/dim, backward, update — and returns the loss."""
  model = build(config, seed)
  batch = to_nchw(images)
  model.initialize(preprocess(batch, config.n_bits_x, noise=False))
  optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, eps=1e-7, fused=True)

  def step() -> float:
    loss = model.bits_per_dim(preprocess(batch, config.n_bits_x)).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()

  return step, model


def make_codec(config, images: np.ndarray, seed: int = 0):
  """(encode, decode) callables on the uint8 batch `[N, H, W, C]`: images -> eps, and eps ->
  uint8 images, without autograd (`torch.inference_mode`)."""
  model = build(config, seed)
  batch = to_nchw(images)
  model.initialize(preprocess(batch, config.n_bits_x, noise=False))

  @torch.inference_mode()
  def encode() -> torch.Tensor:
    return model.encode(preprocess(batch, config.n_bits_x, noise=False))[0]

  eps = encode()

  @torch.inference_mode()
  def decode() -> torch.Tensor:
    return postprocess(model.decode(eps)[0], config.n_bits_x)

  return encode, decode
