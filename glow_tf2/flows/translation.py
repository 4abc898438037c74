"""Translation between two domains as a bijector: x_A -> eps -> x_B.

pix2pix-flow trains the two flows so that paired images get the same standardized latent eps;
A -> B is then decode_B(encode_A(x_A)): all levels of A's eps go into B's decoder, which applies
B's own priors, with no temperature. The map is exact and invertible; its inverse is B -> A, and
its log-det is log|det d x_B / d x_A| = fldj_B(eps) + ildj_A(x_A).

A class-conditional pair (`GlowConfig.n_classes > 0`) translates given the labels of the images:
both flows' priors are then those of the given class.
"""

import tensorflow_probability as tfp

from glow_tf2.flows import glow as glow_lib

tfb = tfp.bijectors


def translation(glow_a, glow_b, labels=None) -> tfb.Bijector:
  """The bijector x_A `[..., H, W, C]` -> x_B `[..., H, W, C]`; `.inverse` translates B -> A.

  Args:
    glow_a: the flow of domain A.
    glow_b: the flow of domain B, of the same data dimension.
    labels: int `[N]` class labels of the images, for a class-conditional pair; None otherwise.

  Raises:
    ValueError: the two flows have different data dimensions, or labels are given for (or
      missing from) a pair that is not (or is) class-conditional.
  """
  if glow_a.config.data_dim != glow_b.config.data_dim:
    raise ValueError(
      f"translation: models of different data dims "
      f"({glow_a.config.data_dim} vs {glow_b.config.data_dim})"
    )
  glow_a, glow_b = glow_lib.pair_given_labels(glow_a, glow_b, labels, "translation")
  return tfb.Chain([glow_b, tfb.Invert(glow_a)], name="translation")
