"""Glow's layers as TFP bijectors, one per module; `forward` = latent -> data."""

from glow_tf2.bijectors.actnorm import ActNorm
from glow_tf2.bijectors.base import GlowBijector
from glow_tf2.bijectors.channel_permutation import ChannelPermutation
from glow_tf2.bijectors.conv1x1 import InvertibleConv1x1
from glow_tf2.bijectors.conv1x1 import LUConv1x1
from glow_tf2.bijectors.coupling import Coupling
from glow_tf2.bijectors.flow_step import FlowStep
from glow_tf2.bijectors.split_prior import SplitPrior
from glow_tf2.bijectors.squeeze import Squeeze
from glow_tf2.bijectors.top_prior import TopPrior
