"""glow-bench's PyTorch Glow (tools/bench_torch.py): glow_tf2's Glow, layer for layer, in PyTorch.

One `nn.Module` per layer, channels-first (NCHW), as PyTorch Glow repositories write them:
`forward` is data -> latent, `reverse` latent -> data. The model, on x `[N, C, H, W]` in
[-0.5, 0.5]:

  squeeze:   [N, C, H, W] -> [N, 4C, H/2, W/2], new channel c * 4 + dy * 2 + dx (glow_tf2's and
             Glow's order);
  per level, K steps of flow, each
    ActNorm:   z = (x + b) * exp(3 logs),                 log|det| = H W sum_c 3 logs_c
               (data-dependent init on the first batch: b = -mean, 3 logs = log 1/(std + 1e-6));
    LU 1x1:    z = x W at every pixel, W = P L (U + diag(sign_s exp(log_s))), P and sign_s
               fixed, L unit lower, U strictly upper; log|det| = H W sum log_s;
    coupling:  [x1, x2] = channel halves; h = f(x1); [t, r] = channel halves of h;
               affine: z2 = (x2 + t) sigmoid(u'), u' = -10 + softplus(r + 2 + 10) (glow_tf2's
               soft floor of the logit r + 2), log|det| = sum log sigmoid(u');
               additive: z2 = x2 + h, log|det| = 0;
    f:         edge-bias conv3x3 (no bias) -> ActNorm -> ReLU -> conv1x1 (no bias) -> ActNorm
               -> ReLU -> zero-initialised edge-bias conv3x3: (conv + b) * exp(3 logs);
  split (every level but the last): [z1, z2]; [mean, logs] = channel halves of a zero conv3x3
             of z1; eps = (z2 - mean) exp(-logs) leaves, log|det| = -sum logs; z1 is squeezed;
  top:       [mean, logs] = channel halves of a zero conv3x3 of a zero image with edge bias (a
             learned mean and log-std per position, `learntop`), eps = (z - mean) exp(-logs).

"Edge bias" is Glow's extra input channel that is 1 on the zero padding and 0 inside; it is
written here as Glow writes it, the channel concatenated to the padded input of a valid conv.

Weights start as glow_tf2's do (N(0, 0.05) for the two hidden convs, zeros for every zero conv,
a random rotation's LU factors for W), drawn from PyTorch's generator. `Glow.bits_per_dim` is
glow_tf2's loss,
  bits(x) = -(sum_d log N(eps_d; 0, 1) + log|det d eps / dx| - D n_bits ln 2) / (D ln 2).
"""

import functools
import math

import torch
from torch import nn
from torch.nn import functional as F

# The soft floor of the affine coupling's scale logit (glow_tf2.flows.coupling.MIN_LOGIT).
MIN_LOGIT = -10.0
LOGSCALE_FACTOR = 3.0


def squeeze(x: torch.Tensor) -> torch.Tensor:
  """[N, C, H, W] -> [N, 4C, H/2, W/2], new channel c * 4 + dy * 2 + dx."""
  n, c, h, w = x.shape
  x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
  return x.reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(z: torch.Tensor) -> torch.Tensor:
  """The inverse of `squeeze`: [N, 4C, H, W] -> [N, C, 2H, 2W]."""
  n, c4, h, w = z.shape
  z = z.reshape(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
  return z.reshape(n, c4 // 4, 2 * h, 2 * w)


@functools.lru_cache(maxsize=None)
def _border(height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
  """`[1, 1, H + 2, W + 2]`: 1 on the one-pixel padding ring, 0 inside (Glow's edge bias)."""
  border = torch.ones(1, 1, height + 2, width + 2, dtype=dtype)
  border[:, :, 1:-1, 1:-1] = 0.0
  return border


def edge_pad(x: torch.Tensor) -> torch.Tensor:
  """[N, C, H, W] -> [N, C + 1, H + 2, W + 2]: zero padding plus the edge-bias channel, last."""
  n, _, h, w = x.shape
  border = _border(h, w, x.dtype).to(x.device).expand(n, 1, h + 2, w + 2)
  return torch.cat([F.pad(x, (1, 1, 1, 1)), border], dim=1)


def _sum_chw(x: torch.Tensor) -> torch.Tensor:
  return x.sum(dim=(1, 2, 3))


class ActNorm(nn.Module):
  """z = (x + b) * exp(3 logs) per channel; initialised from the first batch it sees."""

  def __init__(self, channels: int):
    super().__init__()
    self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
    self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
    self.initialized = False

  @torch.no_grad()
  def initialize(self, x: torch.Tensor) -> None:
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True).sqrt()
    self.bias.copy_(-mean)
    self.logs.copy_(torch.log(1.0 / (std + 1e-6)) / LOGSCALE_FACTOR)
    self.initialized = True

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if not self.initialized:
      self.initialize(x)
    return (x + self.bias) * torch.exp(self.logs * LOGSCALE_FACTOR)

  def reverse(self, z: torch.Tensor) -> torch.Tensor:
    return z * torch.exp(-self.logs * LOGSCALE_FACTOR) - self.bias

  def log_det(self, x: torch.Tensor) -> torch.Tensor:
    """log|det dz/dx| of one image (the same for every image): H W sum_c 3 logs_c."""
    return x.shape[2] * x.shape[3] * self.logs.sum() * LOGSCALE_FACTOR


def _random_rotation(channels: int, generator: torch.Generator) -> torch.Tensor:
  q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator, dtype=torch.float64))
  return q


class LUConv1x1(nn.Module):
  """z = x W at every pixel with W = P L (U + diag(sign_s exp(log_s)))."""

  def __init__(self, channels: int, generator: torch.Generator):
    super().__init__()
    p, lower, upper = torch.linalg.lu(_random_rotation(channels, generator))
    s = torch.diagonal(upper)
    self.register_buffer("p", p.float())
    self.register_buffer("sign_s", torch.sign(s).float())
    self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
    self.register_buffer("eye", torch.eye(channels))
    self.lower = nn.Parameter(torch.tril(lower, -1).float())
    self.upper = nn.Parameter(torch.triu(upper, 1).float())
    self.log_s = nn.Parameter(torch.log(torch.abs(s)).float())

  def _factors(self):
    lower = self.lower * self.lower_mask + self.eye
    upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
    return lower, upper

  def matrix(self) -> torch.Tensor:
    lower, upper = self._factors()
    return self.p @ lower @ upper

  def inverse_matrix(self) -> torch.Tensor:
    lower, upper = self._factors()
    upper_inv = torch.linalg.solve_triangular(upper, self.eye, upper=True)
    lower_inv = torch.linalg.solve_triangular(lower, self.eye, upper=False, unitriangular=True)
    return upper_inv @ lower_inv @ self.p.T

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    # z_j = sum_i x_i W_ij: a conv's weight [out, in] is W transposed.
    return F.conv2d(x, self.matrix().T[:, :, None, None])

  def reverse(self, z: torch.Tensor) -> torch.Tensor:
    return F.conv2d(z, self.inverse_matrix().T[:, :, None, None])

  def log_det(self, x: torch.Tensor) -> torch.Tensor:
    return x.shape[2] * x.shape[3] * self.log_s.sum()


class Conv1x1(nn.Module):
  """z = x W at every pixel with W learned directly (a random rotation at first)."""

  def __init__(self, channels: int, generator: torch.Generator):
    super().__init__()
    self.kernel = nn.Parameter(_random_rotation(channels, generator).float())

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, self.kernel.T[:, :, None, None])

  def reverse(self, z: torch.Tensor) -> torch.Tensor:
    return F.conv2d(z, torch.linalg.inv(self.kernel).T[:, :, None, None])

  def log_det(self, x: torch.Tensor) -> torch.Tensor:
    # float64 as in glow_tf2: float32's LU loses the small changes of a near-orthogonal W.
    log_abs_det = torch.linalg.slogdet(self.kernel.double())[1].to(self.kernel.dtype)
    return x.shape[2] * x.shape[3] * log_abs_det


class EdgeConv3x3(nn.Module):
  """Glow's 3x3 conv with edge bias and no bias of its own; weight ~ N(0, 0.05)."""

  def __init__(self, in_channels: int, out_channels: int, generator: torch.Generator):
    super().__init__()
    weight = torch.randn(out_channels, in_channels + 1, 3, 3, generator=generator) * 0.05
    self.weight = nn.Parameter(weight)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(edge_pad(x), self.weight)


class ZeroConv3x3(nn.Module):
  """(edge-bias conv3x3(x) + b) * exp(3 logs), every parameter zero at first."""

  def __init__(self, in_channels: int, out_channels: int):
    super().__init__()
    self.weight = nn.Parameter(torch.zeros(out_channels, in_channels + 1, 3, 3))
    self.bias = nn.Parameter(torch.zeros(out_channels))
    self.logs = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(edge_pad(x), self.weight, self.bias) * torch.exp(self.logs * LOGSCALE_FACTOR)


class CouplingNetwork(nn.Module):
  """f(x1): conv3x3 -> ActNorm -> ReLU -> conv1x1 -> ActNorm -> ReLU -> zero conv3x3."""

  def __init__(self, in_channels: int, width: int, out_channels: int, generator: torch.Generator):
    super().__init__()
    self.conv_in = EdgeConv3x3(in_channels, width, generator)
    self.norm_in = ActNorm(width)
    self.hidden = nn.Parameter(torch.randn(width, width, 1, 1, generator=generator) * 0.05)
    self.norm_hidden = ActNorm(width)
    self.conv_out = ZeroConv3x3(width, out_channels)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = F.relu(self.norm_in(self.conv_in(x)))
    h = F.relu(self.norm_hidden(F.conv2d(h, self.hidden)))
    return self.conv_out(h)


class Coupling(nn.Module):
  """Affine or additive coupling: x1 passes, x2 is moved (and scaled) by f(x1)."""

  def __init__(self, channels: int, width: int, kind: str, generator: torch.Generator):
    super().__init__()
    self.kind = kind
    self.half = channels // 2
    rest = channels - self.half
    self.net = CouplingNetwork(self.half, width, 2 * rest if kind == "affine" else rest, generator)

  def _shift_and_log_scale(self, x1: torch.Tensor):
    h = self.net(x1)
    if self.kind == "additive":
      return h, None
    shift, raw_scale = h.chunk(2, dim=1)
    logit = MIN_LOGIT + F.softplus(raw_scale + 2.0 - MIN_LOGIT)
    return shift, F.logsigmoid(logit)

  def forward(self, x: torch.Tensor):
    """(z, log|det| `[N]`)."""
    x1, x2 = x.split([self.half, x.shape[1] - self.half], dim=1)
    shift, log_scale = self._shift_and_log_scale(x1)
    if log_scale is None:
      return torch.cat([x1, x2 + shift], dim=1), x.new_zeros(x.shape[0])
    return torch.cat([x1, (x2 + shift) * torch.exp(log_scale)], dim=1), _sum_chw(log_scale)

  def reverse(self, z: torch.Tensor):
    z1, z2 = z.split([self.half, z.shape[1] - self.half], dim=1)
    shift, log_scale = self._shift_and_log_scale(z1)
    if log_scale is None:
      return torch.cat([z1, z2 - shift], dim=1), z.new_zeros(z.shape[0])
    return torch.cat([z1, z2 * torch.exp(-log_scale) - shift], dim=1), -_sum_chw(log_scale)


class FlowStep(nn.Module):
  """ActNorm -> 1x1 conv -> coupling (data -> latent)."""

  def __init__(
    self, channels: int, width: int, permutation: str, coupling: str, generator: torch.Generator
  ):
    super().__init__()
    self.actnorm = ActNorm(channels)
    self.permutation = (LUConv1x1 if permutation == "lu" else Conv1x1)(channels, generator)
    self.coupling = Coupling(channels, width, coupling, generator)

  def forward(self, x: torch.Tensor):
    h = self.actnorm(x)
    mixing_log_det = self.actnorm.log_det(x) + self.permutation.log_det(x)
    z, coupling_log_det = self.coupling(self.permutation(h))
    return z, coupling_log_det + mixing_log_det

  def reverse(self, z: torch.Tensor):
    h, coupling_log_det = self.coupling.reverse(z)
    x = self.actnorm.reverse(self.permutation.reverse(h))
    mixing_log_det = self.actnorm.log_det(z) + self.permutation.log_det(z)
    return x, coupling_log_det - mixing_log_det


class SplitPrior(nn.Module):
  """[z1, z2] -> (z1, eps2 = (z2 - mean(z1)) exp(-logs(z1))) and back."""

  def __init__(self, channels: int):
    super().__init__()
    self.half = channels // 2
    self.conv = ZeroConv3x3(self.half, 2 * (channels - self.half))

  def forward(self, z: torch.Tensor):
    """(z1, eps2, log|det| `[N]`)."""
    z1, z2 = z.split([self.half, z.shape[1] - self.half], dim=1)
    mean, logs = self.conv(z1).chunk(2, dim=1)
    return z1, (z2 - mean) * torch.exp(-logs), -_sum_chw(logs)

  def reverse(self, z1: torch.Tensor, eps2: torch.Tensor):
    mean, logs = self.conv(z1).chunk(2, dim=1)
    return torch.cat([z1, mean + torch.exp(logs) * eps2], dim=1), _sum_chw(logs)


class TopPrior(nn.Module):
  """eps = (z - mean) exp(-logs) with [mean, logs] learned per position (`learntop`) or 0."""

  def __init__(self, shape: tuple[int, int, int], learntop: bool):
    super().__init__()
    self.shape = shape  # (C, H, W)
    self.conv = ZeroConv3x3(0, 2 * shape[0]) if learntop else None

  def mean_and_logs(self, like: torch.Tensor):
    c, h, w = self.shape
    if self.conv is None:
      zero = like.new_zeros(1, c, h, w)
      return zero, zero
    return self.conv(like.new_zeros(1, 0, h, w)).chunk(2, dim=1)

  def forward(self, z: torch.Tensor):
    mean, logs = self.mean_and_logs(z)
    return (z - mean) * torch.exp(-logs), -_sum_chw(logs).expand(z.shape[0])

  def reverse(self, eps: torch.Tensor):
    mean, logs = self.mean_and_logs(eps)
    return mean + torch.exp(logs) * eps, _sum_chw(logs).expand(eps.shape[0])


class Glow(nn.Module):
  """The multi-scale Glow; `encode` x `[N, C, H, W]` -> (eps `[N, D]`, log|det d eps/dx| `[N]`).

  eps is every level's standardized latent flattened as (C, H, W), finest level first.
  """

  def __init__(self, config, seed: int = 0):
    super().__init__()
    h, w, c = config.image_shape
    if config.permutation not in ("lu", "conv"):
      raise ValueError(f"bench_torch: permutation must be lu or conv, got {config.permutation!r}")
    if config.coupling not in ("affine", "additive"):
      raise ValueError(f"bench_torch: coupling must be affine or additive, got {config.coupling!r}")
    if getattr(config, "n_classes", 0):
      raise ValueError(f"bench_torch: no class-conditional prior (n_classes={config.n_classes})")
    generator = torch.Generator().manual_seed(seed)
    self.n_bits_x = config.n_bits_x
    self.data_dim = h * w * c
    self.levels = nn.ModuleList()
    self.splits = nn.ModuleList()
    self.eps_shapes = []
    for level in range(config.n_levels):
      h, w, c = h // 2, w // 2, c * 4
      self.levels.append(
        nn.ModuleList(
          FlowStep(c, config.width, config.permutation, config.coupling, generator)
          for _ in range(config.depth)
        )
      )
      if level < config.n_levels - 1:
        self.splits.append(SplitPrior(c))
        self.eps_shapes.append((c - c // 2, h, w))
        c //= 2
    self.eps_shapes.append((c, h, w))
    self.top = TopPrior((c, h, w), config.learntop)

  def encode_levels(self, x: torch.Tensor):
    """([eps `[N, c, h, w]` per level, finest first], log|det| `[N]`)."""
    h = squeeze(x)
    log_det = x.new_zeros(x.shape[0])
    eps = []
    for level, steps in enumerate(self.levels):
      for step in steps:
        h, ld = step(h)
        log_det = log_det + ld
      if level < len(self.splits):
        h, eps_level, ld = self.splits[level](h)
        log_det = log_det + ld
        eps.append(eps_level)
        h = squeeze(h)
    h, ld = self.top(h)
    eps.append(h)
    return eps, log_det + ld

  def encode(self, x: torch.Tensor):
    eps, log_det = self.encode_levels(x)
    return torch.cat([e.flatten(1) for e in eps], dim=1), log_det

  def split_eps(self, eps: torch.Tensor) -> list[torch.Tensor]:
    sizes = [math.prod(s) for s in self.eps_shapes]
    return [part.reshape((-1,) + s) for part, s in zip(eps.split(sizes, dim=1), self.eps_shapes)]

  def decode(self, eps: torch.Tensor):
    """(x `[N, C, H, W]`, log|det dx/d eps| `[N]`)."""
    parts = self.split_eps(eps)
    h, log_det = self.top.reverse(parts[-1])
    for level in reversed(range(len(self.levels))):
      if level < len(self.splits):
        h, ld = self.splits[level].reverse(unsqueeze(h), parts[level])
        log_det = log_det + ld
      for step in reversed(self.levels[level]):
        h, ld = step.reverse(h)
        log_det = log_det + ld
    return unsqueeze(h), log_det

  @torch.no_grad()
  def initialize(self, x: torch.Tensor) -> None:
    """Data-dependent init of every ActNorm on x (one encoding pass, data -> latent order)."""
    self.encode_levels(x)

  def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
    """glow_tf2's bits/dim `[N]` of continuous x."""
    eps, log_det = self.encode_levels(x)
    square_sum = sum(e.square().sum(dim=(1, 2, 3)) for e in eps)
    log_prob = -0.5 * (square_sum + self.data_dim * math.log(2.0 * math.pi)) + log_det
    objective = log_prob - self.data_dim * self.n_bits_x * math.log(2.0)
    return -objective / (self.data_dim * math.log(2.0))
