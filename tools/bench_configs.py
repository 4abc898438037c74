"""glow-bench's configurations and the work of each: the FLOPs of an encoding and a step."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  image_size: int = 32
  channels: int = 3
  n_levels: int = 3
  depth: int = 8
  width: int = 128
  batch: int = 16
  coupling: str = "affine"
  permutation: str = "lu"
  precision: str = "float32"

  def glow_config(self):
    import glow_tf2

    return glow_tf2.GlowConfig(
      precision=self.precision,
      image_shape=(self.image_size, self.image_size, self.channels),
      n_levels=self.n_levels,
      depth=self.depth,
      width=self.width,
      permutation=self.permutation,
      coupling=self.coupling,
    )


CONFIGS = {
  # a: a smoke configuration, seconds to run.
  "a": BenchConfig(image_size=16, n_levels=2, depth=2, width=32, batch=8),
  # b: the configuration of the comparison with the popular PyTorch Glow (rosinality's, 1.66 M
  # parameters).
  "b": BenchConfig(),
  # c: the original's CIFAR/edges2shoes model (depth 32, width 512, batch 64).
  "c": BenchConfig(depth=32, width=512, batch=64),
}
CONFIGS["paper"] = CONFIGS["c"]


def forward_flops_per_image(config) -> float:
  """Multiply-adds x 2 of the convolutions and per-pixel matmuls of one encoding.

  Per step of flow on an h x w x c level: the 1x1 conv (c x c), and the coupling network:
  3x3 conv (c/2 + 1 edge channel -> width), 1x1 (width -> width), 3x3 zero conv
  (width + 1 -> c or c/2 outputs); per split, the prior's 3x3 conv (c/2 + 1 -> c); the learned
  top prior's 3x3 conv of the edge channel (1 -> 2c). Element-wise
  work is left out: it is a few percent and costs memory traffic rather than FLOPs.
  """
  total = 0.0
  for level, (h, w, c) in enumerate(config.level_shapes):
    half = c // 2
    out = c if config.coupling == "affine" else c - half
    per_pixel = (
      c * c
      + 9 * (half + 1) * config.width
      + config.width * config.width
      + 9 * (config.width + 1) * out
    )
    total += config.depth * 2.0 * h * w * per_pixel
    if level < config.n_levels - 1:
      total += 2.0 * h * w * 9 * (half + 1) * c
    elif config.learntop:  # the top prior's conv sees only the edge channel
      total += 2.0 * h * w * 9 * 2 * c
  return total


def train_step_flops(config, batch: int) -> float:
  """A training step is about one forward and a backward of twice its cost."""
  return 3.0 * forward_flops_per_image(config) * batch
