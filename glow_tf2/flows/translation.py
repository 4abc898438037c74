"""Translation between two domains as a bijector: x_A -> eps -> x_B.

pix2pix-flow trains the two flows so that paired images get the same standardized latent eps;
A -> B is then decode_B(encode_A(x_A)): all levels of A's eps go into B's decoder, which applies
B's own priors, with no temperature. The map is exact and invertible; its inverse is B -> A.
"""

import tensorflow_probability as tfp

tfb = tfp.bijectors


def translation(glow_a, glow_b) -> tfb.Bijector:
  """The bijector x_A `[..., H, W, C]` -> x_B `[..., H, W, C]`; `.inverse` translates B -> A."""
  if glow_a.config.data_dim != glow_b.config.data_dim:
    raise ValueError(
      f"translation: models of different data dims "
      f"({glow_a.config.data_dim} vs {glow_b.config.data_dim})"
    )
  return tfb.Chain([glow_b, tfb.Invert(glow_a)], name="translation")
