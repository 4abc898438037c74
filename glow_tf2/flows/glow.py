"""Glow (Kingma & Dhariwal, 2018) as one TFP bijector from a standard normal to images.

`forward` maps eps `[..., D]` to x `[..., H, W, C]` (continuous, in [-0.5, 0.5]); `inverse` maps
images to eps. With L levels of K steps each (32x32x3, L = 3 shown), data -> latent is

  x [32,32,3] -squeeze-> [16,16,12] -K steps-> split: eps_0 [16,16,6], keep [16,16,6]
    -squeeze-> [8,8,24] -K steps-> split: eps_1 [8,8,12], keep [8,8,12]
    -squeeze-> [4,4,48] -K steps-> top prior: eps_top [4,4,48]

eps = concat(flatten(eps_0), flatten(eps_1), ..., flatten(eps_top)): every level's standardized
latent, row-major NHWC, finest level first and top level last, the layout pix2pix-flow's code
loss and `z_A.npy` use. Because every learned prior (split and top) is an affine bijector onto
N(0, 1), the density of the model is that of `TransformedDistribution(N(0, I_D), glow)`:

  log p(x) = sum_d log N(eps_d; 0, 1) + log|det d eps / dx|.

A whole pass computes the value and its log-det together (see `flows/base.py`). The K steps of a
level (and the same level of another Glow of this architecture) run as calls of one traced function
(`flows/shared_trace.py`), so the graph of a pass, of its gradient and of its checkpointed
recomputation grows by a call per step, not by a step's ops.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from glow_tf2.config import GlowConfig
from glow_tf2.flows import base
from glow_tf2.flows import flow_step
from glow_tf2.flows import shared_trace
from glow_tf2.flows import split_prior
from glow_tf2.flows import squeeze as squeeze_lib
from glow_tf2.flows import top_prior

tfd = tfp.distributions


class Glow(base.GlowBijector):
  """The multi-scale Glow flow; `forward` = latent eps -> image x, `inverse` = x -> eps.

  Args:
    config: the architecture.
    seed: seeds every initial value (weights, rotations, shuffles); None draws fresh ones.
    gradient_checkpointing: recompute each step of flow's activations in the backward pass of the
      encoding (`tf.recompute_grad`) instead of keeping them: about one more forward pass of
      compute. It cuts the tensors a training step holds (TF's BFC allocator peak at depth 8,
      width 512, batch 64: 1.0 GB -> 0.34 GB).
    branches: run a batch as this many independent sub-batches (the first ones one image
      larger when it does not divide; only a batch size known when tracing is split). Every
      example's result is the same; what changes is the graph: Glow's layers form one long
      chain, so a CPU's cores can only share an op, and on a few cores a thin convolution gains
      little from a second thread. With B branches and
      one thread per op (`distribute.configure_threads(1, B)`), B ops run at once, one per core.
      The cost: each branch assembles the small weights (LU products, folded ActNorms) again.
      Leave it at 1 on a GPU.
    name: name scope of the variables.

  `config.precision` sets the compute type of the coupling networks and the priors' convs
  (bfloat16 or float16 with float32 variables; see `flows.precision`); the flow's arithmetic, the
  log-dets and the log-probs stay float32, and `decode(encode(x))` stays exact to float32 rounding.

  Class labels of a class-conditional model (`config.n_classes > 0`) are passed as the keyword
  `labels` to every method: `glow.inverse(x, labels=y)`.
  """

  def __init__(
    self,
    config: GlowConfig,
    seed: int | None = None,
    gradient_checkpointing: bool = False,
    branches: int = 1,
    name: str = "glow",
  ):
    parameters = dict(locals())
    if not isinstance(branches, int) or branches < 1:
      raise ValueError(f"Glow: branches must be an int >= 1, got {branches!r}")
    self.config = config
    self.gradient_checkpointing = gradient_checkpointing
    self.branches = branches
    rng = np.random.default_rng(seed)
    level_shapes = config.level_shapes
    with tf.name_scope(name):
      self.steps: list[list[flow_step.FlowStep]] = [
        [
          flow_step.FlowStep(
            c,
            config.width,
            config.permutation,
            config.coupling,
            rng,
            precision=config.precision,
            name=f"level{level}_step{k}",
          )
          for k in range(config.depth)
        ]
        for level, (_, _, c) in enumerate(level_shapes)
      ]
      self.splits = [
        split_prior.SplitPrior(c, precision=config.precision, name=f"level{level}_split")
        for level, (_, _, c) in enumerate(level_shapes[:-1])
      ]
      self.top = top_prior.TopPrior(
        level_shapes[-1], config.learntop, config.n_classes, precision=config.precision
      )
    self._eps_sizes = [int(np.prod(s)) for s in config.eps_shapes]
    super().__init__(
      parameters=parameters, name=name, forward_min_event_ndims=1, inverse_min_event_ndims=3
    )

  @property
  def top_dim(self) -> int:
    """Size of the last (top-level) block of eps."""
    return self.config.top_dim

  # ---------------------------------------------------------------------------------------------
  # The two directions.

  def _encode_step(self, step, h):
    def encode(h):
      return shared_trace.call(step, "_inverse_and_log_det", h)

    if self.gradient_checkpointing:
      return tf.recompute_grad(encode)(h)
    return encode(h)

  def _in_branches(self, pass_fn, values, labels):
    """pass_fn(values, labels) -> (out, log_det) on up to `self.branches` sub-batches, concatenated.

    Only a batch size known when tracing is split, and never into empty parts (grappler's
    rewrites fail on them); an unknown batch size runs as one branch.
    """
    n = values.shape[0]
    branches = min(self.branches, n or 1)
    if branches == 1:
      return pass_fn(values, labels)
    sizes = [(n + branches - 1 - i) // branches for i in range(branches)]
    parts = tf.split(values, sizes)
    label_parts = [None] * branches if labels is None else tf.split(labels, sizes)
    outs, log_dets = zip(*[pass_fn(v, y) for v, y in zip(parts, label_parts)])
    return tf.concat(outs, 0), tf.concat(log_dets, 0)

  def _inverse_and_log_det(self, x, labels=None):
    batch_shape = tf.shape(x)[:-3]
    x = tf.reshape(x, (-1,) + self.config.image_shape)
    labels = None if labels is None else tf.reshape(labels, [-1])
    eps, log_det = self._in_branches(self._encode_batch, x, labels)
    return (
      tf.reshape(eps, tf.concat([batch_shape, [self.config.data_dim]], 0)),
      tf.reshape(log_det, batch_shape),
    )

  def _forward_and_log_det(self, eps, labels=None):
    batch_shape = tf.shape(eps)[:-1]
    eps = tf.reshape(eps, [-1, self.config.data_dim])
    labels = None if labels is None else tf.reshape(labels, [-1])
    x, log_det = self._in_branches(self._decode_batch, eps, labels)
    return (
      tf.reshape(x, tf.concat([batch_shape, self.config.image_shape], 0)),
      tf.reshape(log_det, batch_shape),
    )

  def _encode_batch(self, x, labels):
    """`[N, H, W, C]` -> (eps `[N, D]`, log_det `[N]`)."""
    h = squeeze_lib.squeeze(x)
    log_det = tf.zeros(tf.shape(h)[:1], h.dtype)
    eps_parts = []
    for level, steps in enumerate(self.steps):
      for step in steps:
        h, ld = self._encode_step(step, h)
        log_det += ld
      if level < len(self.splits):
        h, ld = self.splits[level]._inverse_and_log_det(h)
        log_det += ld
        h, eps_level = base.split_channels(h, h.shape[-1] // 2)
        eps_parts.append(tf.reshape(eps_level, [tf.shape(h)[0], -1]))
        h = squeeze_lib.squeeze(h)
    h, ld = self.top._inverse_and_log_det(h, labels=labels)
    eps_parts.append(tf.reshape(h, [tf.shape(h)[0], -1]))
    return tf.concat(eps_parts, axis=-1), log_det + ld

  def _decode_batch(self, eps, labels):
    """eps `[N, D]` -> (x `[N, H, W, C]`, log_det `[N]`)."""
    parts = tf.split(eps, self._eps_sizes, axis=-1)
    shapes = self.config.eps_shapes
    h, log_det = self.top._forward_and_log_det(
      tf.reshape(parts[-1], (-1,) + shapes[-1]), labels=labels
    )
    for level in reversed(range(len(self.steps))):
      if level < len(self.splits):
        eps_level = tf.reshape(parts[level], (-1,) + shapes[level])
        h = tf.concat([squeeze_lib.unsqueeze(h), eps_level], axis=-1)
        h, ld = self.splits[level]._forward_and_log_det(h)
        log_det += ld
      for step in reversed(self.steps[level]):
        h, ld = shared_trace.call(step, "_forward_and_log_det", h)
        log_det += ld
    return squeeze_lib.unsqueeze(h), log_det

  # Event shapes: eps [D] <-> x [H, W, C].
  def _forward_event_shape(self, shape):
    return shape[:-1].concatenate(self.config.image_shape)

  def _forward_event_shape_tensor(self, shape):
    return tf.concat([shape[:-1], self.config.image_shape], 0)

  def _inverse_event_shape(self, shape):
    return shape[:-3].concatenate([self.config.data_dim])

  def _inverse_event_shape_tensor(self, shape):
    return tf.concat([shape[:-3], [self.config.data_dim]], 0)

  # ---------------------------------------------------------------------------------------------
  # Public helpers beyond TFP's interface.

  def encode(self, x, labels=None):
    """(eps `[..., D]`, log|det d eps/dx| `[...]`) in one pass, bypassing TFP's cache."""
    return self._inverse_and_log_det(x, labels=labels)

  def decode(self, eps, labels=None):
    """(x `[..., H, W, C]`, log|det dx/d eps| `[...]`) in one pass, bypassing TFP's cache."""
    return self._forward_and_log_det(eps, labels=labels)

  def split_eps(self, eps) -> list[tf.Tensor]:
    """eps `[..., D]` -> one `[..., h, w, c]` tensor per level, finest first, top last."""
    batch_shape = tf.shape(eps)[:-1]
    parts = tf.split(eps, self._eps_sizes, axis=-1)
    return [
      tf.reshape(p, tf.concat([batch_shape, s], 0)) for p, s in zip(parts, self.config.eps_shapes)
    ]

  def initialize(self, x, labels=None) -> None:
    """Data-dependent initialisation of every ActNorm, in data -> latent order, on x.

    Run it once, before training, on a batch of preprocessed images `[N, H, W, C]` (the original
    used 256). Under a `tf.distribute` strategy call it in cross-replica context (inside
    `strategy.scope()`, not in `strategy.run`) so every replica gets the same values.
    Split and top priors are zero-initialised and need no data.
    """
    h_, w_, c_ = self.config.image_shape
    h = squeeze_lib.squeeze(tf.reshape(x, [-1, h_, w_, c_]))
    for level, steps in enumerate(self.steps):
      for step in steps:
        h = step.initialize(h)
      if level < len(self.splits):
        h, _ = self.splits[level]._inverse_and_log_det(h)
        h = squeeze_lib.squeeze(base.split_channels(h, h.shape[-1] // 2)[0])
    del labels  # the top prior starts at N(0, 1) for every class

  def distribution(self, labels=None) -> tfd.TransformedDistribution:
    """The model as `TransformedDistribution(N(0, I_D), glow)`: `log_prob(x)`, `sample(n)`.

    With a class-conditional model pass `labels` `[N]`; `sample(N)` then draws one image per label.
    """
    base_distribution = tfd.Sample(
      tfd.Normal(tf.constant(0.0), 1.0), sample_shape=[self.config.data_dim]
    )
    bijector = self if labels is None else GivenLabels(self, labels)
    return tfd.TransformedDistribution(base_distribution, bijector)


class GivenLabels(base.GlowBijector):
  """A class-conditional Glow with its labels bound: `forward(eps) = glow.forward(eps, labels)`.

  TFP's `Chain` and `TransformedDistribution` hand keyword arguments to a bijector only by its
  name; binding the labels here lets a conditional model (`Glow.distribution(labels)`) or a
  translation (or any chain) of conditional flows be called like any bijector.

  Args:
    glow: a `glow_tf2.Glow`.
    labels: integer `[N]` class labels (any integer dtype), one per image of the batches it
      will see.
  """

  def __init__(self, glow, labels, name=None):
    parameters = dict(locals())
    self.glow = glow
    labels = tf.convert_to_tensor(labels)
    if not labels.dtype.is_integer:
      raise TypeError(f"GivenLabels: labels must be integer class indices, got {labels.dtype.name}")
    # Any integer dtype (tf.data yields int64); the class-embedding lookups take int32.
    self.labels = tf.cast(labels, tf.int32)
    super().__init__(
      parameters=parameters,
      name=name or f"{glow.name}_given_labels",
      forward_min_event_ndims=1,
      inverse_min_event_ndims=3,
    )

  def _forward_and_log_det(self, eps):
    return self.glow.decode(eps, labels=self.labels)

  def _inverse_and_log_det(self, x):
    return self.glow.encode(x, labels=self.labels)

  def _forward_event_shape(self, shape):
    return self.glow.forward_event_shape(shape)

  def _forward_event_shape_tensor(self, shape):
    return self.glow.forward_event_shape_tensor(shape)

  def _inverse_event_shape(self, shape):
    return self.glow.inverse_event_shape(shape)

  def _inverse_event_shape_tensor(self, shape):
    return self.glow.inverse_event_shape_tensor(shape)


def pair_given_labels(glow_a, glow_b, labels, what: str):
  """The two flows of a translation, with `labels` bound (`GivenLabels`) when they are conditional.

  A translation of a class-conditional pair needs the labels of its images (both priors read
  them); one of an unconditional pair must not be given any, which would otherwise be ignored.

  Raises:
    ValueError: named after `what`, labels are given for a pair that is not class-conditional, or
      missing for one that is.
  """
  conditional = [bool(g.config.n_classes) for g in (glow_a, glow_b)]
  if labels is not None and not all(conditional):
    raise ValueError(f"{what}: labels given, but the pair is not class-conditional")
  if labels is None and any(conditional):
    raise ValueError(f"{what}: a class-conditional pair needs the images' labels")
  if labels is None:
    return glow_a, glow_b
  return GivenLabels(glow_a, labels), GivenLabels(glow_b, labels)
