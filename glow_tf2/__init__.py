"""glow_tf2: pix2pix-flow (two jointly trained Glow flows) in TensorFlow 2 and TFP.

Direction convention, everywhere in this package (TFP's): a bijector's `forward` maps
latent -> data (decode, sample) and its `inverse` maps data -> latent (encode). So a model is
`tfd.TransformedDistribution(N(0, I), glow)` (`Glow.distribution()`), and translation from
domain A to domain B is itself a bijector: `tfb.Chain([glow_b, tfb.Invert(glow_a)])`
(`glow_tf2.translation(glow_a, glow_b)`).
"""

from glow_tf2.config import GlowConfig
from glow_tf2.glow import Glow
from glow_tf2.input_pipeline import make_dataset
from glow_tf2.problems import Problem
from glow_tf2.problems import get_problem
from glow_tf2.quantization import bits_per_dim
from glow_tf2.quantization import postprocess
from glow_tf2.quantization import preprocess
from glow_tf2.records import DataError
from glow_tf2.translation import translation

__all__ = ["DataError", "Glow", "GlowConfig", "Problem", "bits_per_dim", "get_problem",
           "make_dataset", "postprocess", "preprocess", "translation"]
