"""glow_tf2: pix2pix-flow (two jointly trained Glow flows) in TensorFlow 2 and TFP.

Direction convention, everywhere in this package (TFP's): a bijector's `forward` maps
latent -> data (decode, sample) and its `inverse` maps data -> latent (encode). So a model is
`tfd.TransformedDistribution(N(0, I), glow)` (`Glow.distribution()`), and translation from
domain A to domain B is itself a bijector: `tfb.Chain([glow_b, tfb.Invert(glow_a)])`
(`glow_tf2.translation(glow_a, glow_b)`).

Layers (each imports only the ones before it; docs/architecture.md):
  flows/    the model: Glow's layers as TFP bijectors, the Glow chain, translation
  losses    pre/postprocessing, dequantisation, bits/dim, code and translation distances
  input/    the TFRecord format, the problem registry, the tf.data pipeline
  pair      a pair of image models (two Glows and the prior of their codes): `ImagePair`,
            `load_pair(run folder or SavedModel)`
  train/    the training step, loop, outputs, optimiser and strategies
  serving/  SavedModel export, evaluation, the REST server
  demo/     the web demo
  cli/      the binaries
"""

# First: a glow binary starting imports TensorFlow with its banners hidden (unless --verbose).
from glow_tf2 import quiet  # isort: skip
from glow_tf2 import grappler  # isort: skip
from glow_tf2.config import GlowConfig
from glow_tf2.flows.glow import Glow
from glow_tf2.flows.translation import translation
from glow_tf2.input.pipeline import make_dataset
from glow_tf2.input.problems import Problem
from glow_tf2.input.problems import get_problem
from glow_tf2.input.records import DataError
from glow_tf2.losses import bits_per_dim
from glow_tf2.losses import postprocess
from glow_tf2.losses import preprocess
from glow_tf2.pair import ImagePair
from glow_tf2.pair import load_pair

# A glow binary's graphs skip Grappler's rewrites on a CPU: its first step comes sooner and no
# step is slower (`grappler`). A library user's process is left as TensorFlow sets it.
if quiet.is_binary():
  grappler.skip_on_cpu()

__all__ = [
  "DataError",
  "Glow",
  "GlowConfig",
  "ImagePair",
  "Problem",
  "bits_per_dim",
  "get_problem",
  "load_pair",
  "make_dataset",
  "postprocess",
  "preprocess",
  "translation",
]
