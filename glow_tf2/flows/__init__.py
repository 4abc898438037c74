"""The model: Glow's layers as TFP bijectors (one per module), the Glow chain, translation.

`forward` maps latent -> data everywhere.
"""

from glow_tf2.flows.actnorm import ActNorm
from glow_tf2.flows.base import GlowBijector
from glow_tf2.flows.channel_permutation import ChannelPermutation
from glow_tf2.flows.conv1x1 import InvertibleConv1x1
from glow_tf2.flows.conv1x1 import LUConv1x1
from glow_tf2.flows.coupling import Coupling
from glow_tf2.flows.flow_step import FlowStep
from glow_tf2.flows.split_prior import SplitPrior
from glow_tf2.flows.squeeze import Squeeze
from glow_tf2.flows.top_prior import TopPrior

__all__ = [
  "ActNorm",
  "ChannelPermutation",
  "Coupling",
  "FlowStep",
  "GlowBijector",
  "InvertibleConv1x1",
  "LUConv1x1",
  "SplitPrior",
  "Squeeze",
  "TopPrior",
]
