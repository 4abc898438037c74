"""glow_tf2: pix2pix-flow (two jointly trained Glow flows) in TensorFlow 2 and TFP.

Direction convention, everywhere in this package (TFP's): a bijector's `forward` maps
latent -> data (decode, sample) and its `inverse` maps data -> latent (encode). So a model is
`tfd.TransformedDistribution(N(0, I), glow)` (`Glow.distribution()`), and translation from
domain A to domain B is itself a bijector: `tfb.Chain([glow_b, tfb.Invert(glow_a)])`
(`glow_tf2.translation(glow_a, glow_b)`).
"""

from glow_tf2.config import GlowConfig
from glow_tf2.glow import Glow
from glow_tf2.quantization import bits_per_dim
from glow_tf2.quantization import postprocess
from glow_tf2.quantization import preprocess
from glow_tf2.translation import translation

__all__ = ["GlowConfig", "Glow", "bits_per_dim", "postprocess", "preprocess", "translation"]
