"""Bits/dim of a pair of images under the coupled prior: the joint, the conditionals, the marginals.

With the codes of `Glow.encode` (eps_X, logdet_X = log|det d eps_X / d x_X|, X = A, B) and a
`flows.coupled_prior.CoupledPrior`, the log-densities of the continuous images are

  log p_A(x_A)         = log N(eps_A; 0, I) + logdet_A                       (marginal of A)
  log p_B(x_B | x_A)   = log N(eps_B; rho eps_A, 1 - rho^2) + logdet_B       (B given A)
  log p(x_A, x_B)      = log p_A(x_A) + log p_B(x_B | x_A)                   (the pair)

and symmetrically for B's marginal and A given B. Each becomes Glow's bits/dim through
`losses.bits_from_log_prob` with the number of dimensions it describes: 2D for the pair,
D for a conditional or a marginal. So, per example and exactly,

  joint = (a + b_given_a) / 2 = (b + a_given_b) / 2,

where joint bounds the bits of the discrete pair: -(log p(x_A, x_B) - 2 D log n_bins) / (2 D ln 2).
`joint` is the training loss of the coupled model: minimising it gives both Glows (and rho) the
gradient of the one likelihood of the pair; nothing is stopped.
"""

import math
from typing import NamedTuple

import tensorflow as tf

from glow_tf2 import losses
from glow_tf2.flows.coupled_prior import CoupledPrior


class CoupledBits(NamedTuple):
  """Per-example bits/dim `[N]` of a pair under the coupled prior.

  Attributes:
    joint: of the pair, per dimension of the pair (2D): the training loss.
    b_given_a: of x_B given x_A, per dimension of B.
    a_given_b: of x_A given x_B, per dimension of A.
    a: of x_A alone (A's marginal, a plain Glow).
    b: of x_B alone.
  """

  joint: tf.Tensor
  b_given_a: tf.Tensor
  a_given_b: tf.Tensor
  a: tf.Tensor
  b: tf.Tensor


def joint_bits_per_dim(prior: CoupledPrior, eps_a, log_det_a, eps_b, log_det_b, n_bits_x: int):
  """`[N]`: -(log p_A(x_A) + log p_B(x_B | x_A) - 2 D log n_bins) / (2 D ln 2).

  Args:
    prior: the coupled prior.
    eps_a: A's code `[N, D]` (`Glow.encode`); eps_b likewise.
    log_det_a: log|det d eps_A / d x_A| `[N]`; log_det_b likewise.
    n_bits_x: bits per colour channel of both domains.
  """
  log_prob = prior.log_prob(eps_a, eps_b) + log_det_a + log_det_b
  return losses.bits_from_log_prob(log_prob, 2 * prior.data_dim, n_bits_x)


def coupled_bits(
  prior: CoupledPrior, eps_a, log_det_a, eps_b, log_det_b, n_bits_x: int
) -> CoupledBits:
  """Every bits/dim of a pair `[N]` from the two encodings (arguments as `joint_bits_per_dim`)."""
  d = prior.data_dim
  marginal_a = prior.marginal_log_prob(eps_a) + log_det_a
  marginal_b = prior.marginal_log_prob(eps_b) + log_det_b
  b_given_a = prior.conditional_log_prob(eps_b, eps_a) + log_det_b
  a_given_b = prior.conditional_log_prob(eps_a, eps_b) + log_det_a

  def bits(log_prob, dims):
    return losses.bits_from_log_prob(log_prob, dims, n_bits_x)

  return CoupledBits(
    joint=bits(marginal_a + b_given_a, 2 * d),
    b_given_a=bits(b_given_a, d),
    a_given_b=bits(a_given_b, d),
    a=bits(marginal_a, d),
    b=bits(marginal_b, d),
  )


def coupled_bits_per_dim(
  glow_a, glow_b, prior: CoupledPrior, images_a, images_b, noise: bool = True, seed=None
) -> CoupledBits:
  """`coupled_bits` of uint8 image pairs `[N, H, W, C]`, dequantised as `losses.bits_per_dim`.

  Args:
    glow_a: A's Glow; glow_b: B's (unconditional models; same image size and n_bits_x).
    prior: the coupled prior.
    images_a: uint8 `[N, H, W, C]`; images_b: their partners.
    noise: dequantisation noise (training, Glow's reported figure) or the mid-bin value.
    seed: a stateless seed `[2]` for the noise; A's noise uses it, B's a seed derived from it.
  """
  n_bits_x = glow_a.config.n_bits_x
  if glow_b.config.n_bits_x != n_bits_x:
    raise ValueError(
      f"coupled_bits_per_dim: n_bits_x differs ({n_bits_x} vs {glow_b.config.n_bits_x})"
    )
  seed_a = seed_b = None
  if seed is not None:
    seed_a, seed_b = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  x_a = losses.preprocess(images_a, n_bits_x, noise=noise, seed=seed_a)
  x_b = losses.preprocess(images_b, n_bits_x, noise=noise, seed=seed_b)
  eps_a, log_det_a = glow_a.encode(x_a)
  eps_b, log_det_b = glow_b.encode(x_b)
  return coupled_bits(prior, eps_a, log_det_a, eps_b, log_det_b, n_bits_x)


def joint_from_marginals(prior: CoupledPrior, bits_a, bits_b, eps_a, eps_b):
  """(joint, b_given_a, a_given_b) `[N]` from each model's own bits/dim and codes.

  A Glow's bits/dim is its marginal, bits_X = -(log N(eps_X; 0, I) + logdet_X - D log n_bins) /
  (D ln 2), so swapping the marginal prior term for the conditional one needs no log-det:

    bits_{B|A} = bits_B + (log N(eps_B; 0, I) - log N(eps_B; rho eps_A, 1 - rho^2)) / (D ln 2),
    joint      = (bits_A + bits_{B|A}) / 2,

  and symmetrically for A given B. This is what training uses: `FlowModel.objective` already
  gives bits_x and eps.
  """
  scale = 1.0 / (prior.data_dim * math.log(2.0))
  b_given_a = bits_b + scale * (
    prior.marginal_log_prob(eps_b) - prior.conditional_log_prob(eps_b, eps_a)
  )
  a_given_b = bits_a + scale * (
    prior.marginal_log_prob(eps_a) - prior.conditional_log_prob(eps_a, eps_b)
  )
  return 0.5 * (bits_a + b_given_a), b_given_a, a_given_b


def coupled_side_losses(terms, loss_config, prior: CoupledPrior):
  """Per-example losses of a coupled pair, from `FlowModel.objective` outputs of "A" and "B".

  Both sides' loss is the pair's joint bits/dim (scaled by mle_loss_scale), plus each side's own
  class term (weight_y * bits_y). Nothing is stopped: summed over the sides, the total is
  2 * joint, whose gradient for either model (and for rho) is that of the one likelihood of the
  pair, at the scale of a plain run's bits_A + bits_B.

  Returns:
    (losses, extra): losses = {"A": `[N]`, "B": `[N]`}; extra = {"joint_bits_per_dim",
    "bits_b_given_a", "bits_a_given_b"}, each `[N]`, for the logs.
  """
  a, b = terms["A"], terms["B"]
  joint, b_given_a, a_given_b = joint_from_marginals(
    prior, a["bits_x"], b["bits_x"], a["eps"], b["eps"]
  )
  losses = {
    key: loss_config.mle_loss_scale * joint + loss_config.weight_y * t["bits_y"]
    for key, t in terms.items()
  }
  extra = {
    "joint_bits_per_dim": joint,
    "bits_b_given_a": b_given_a,
    "bits_a_given_b": a_given_b,
  }
  return losses, extra
