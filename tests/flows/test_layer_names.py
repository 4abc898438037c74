"""What every flow layer records about itself: its name, its variables' names, which of them
train, their dtypes, and TFP's `parameters`.

Variable names are how a message names a layer (the trainer's non-finite-weights error lists
them) and how a person finds one in a checkpoint or in TensorBoard; `trainable` decides what the
optimizer moves (a permutation or a sign that trained would no longer be one); `parameters` is
what TFP's `copy()` and repr read. The expected values are spelled out here, not derived from
the code.
"""

import numpy as np
import pytest

from glow_tf2 import flows as gb

NET = "coupling_network"
# The variables of nets.CouplingNetwork under a coupling's name scope (trainable, all float32).
COUPLING_NET = [
  f"{NET}/actnorm_hidden/bias",
  f"{NET}/actnorm_hidden/logs",
  f"{NET}/actnorm_in/bias",
  f"{NET}/actnorm_in/logs",
  f"{NET}/conv_in/kernel",
  f"{NET}/conv_out/bias",
  f"{NET}/conv_out/kernel",
  f"{NET}/conv_out/logs",
  f"{NET}/kernel_hidden",
]
LU = ["log_s", "lower", "upper"]  # trainable; p and sign_s are fixed
ZERO_CONV = ["bias", "kernel", "logs"]


def _names(scope, leaves):
  return sorted(f"{scope}/{leaf}:0" for leaf in leaves)


def _cases():
  """(id, factory, name, variables, trainable variables, parameters without rng)."""
  rng = np.random.default_rng(0)
  return [
    (
      "actnorm",
      lambda: gb.ActNorm(3),
      "actnorm",
      _names("actnorm", ["bias", "logs"]),
      _names("actnorm", ["bias", "logs"]),
      {"channels": 3, "logscale_factor": 3.0, "name": "actnorm"},
    ),
    (
      "conv1x1",
      lambda: gb.InvertibleConv1x1(3, rng),
      "conv1x1",
      _names("conv1x1", ["kernel"]),
      _names("conv1x1", ["kernel"]),
      {"channels": 3, "name": "conv1x1"},
    ),
    (
      "lu",
      lambda: gb.LUConv1x1(3, rng),
      "lu_conv1x1",
      _names("lu_conv1x1", LU + ["p", "sign_s"]),
      _names("lu_conv1x1", LU),
      {"channels": 3, "name": "lu_conv1x1"},
    ),
    (
      "permutation",
      lambda: gb.ChannelPermutation([1, 2, 0]),
      "channel_permutation",
      _names("channel_permutation", ["permutation"]),
      [],
      {"permutation": [1, 2, 0], "name": "channel_permutation"},
    ),
    (
      "reverse",
      lambda: gb.ChannelPermutation.reverse(3),
      "reverse",
      _names("reverse", ["permutation"]),
      [],
      {"permutation": [2, 1, 0], "name": "reverse"},
    ),
    (
      "shuffle",
      lambda: gb.ChannelPermutation.shuffle(3, seed=1),
      "shuffle",
      _names("shuffle", ["permutation"]),
      [],
      {"permutation": np.random.default_rng(1).permutation(3).tolist(), "name": "shuffle"},
    ),
    ("squeeze", lambda: gb.Squeeze(), "squeeze", [], [], {"name": "squeeze"}),
    (
      "coupling",
      lambda: gb.Coupling(4, 8, "affine", rng),
      "coupling",
      _names("coupling", COUPLING_NET),
      _names("coupling", COUPLING_NET),
      {"channels": 4, "width": 8, "kind": "affine", "precision": "float32", "name": "coupling"},
    ),
    (
      "split_prior",
      lambda: gb.SplitPrior(4),
      "split_prior",
      _names("split_prior/prior_conv", ZERO_CONV),
      _names("split_prior/prior_conv", ZERO_CONV),
      {"channels": 4, "precision": "float32", "name": "split_prior"},
    ),
    (
      "top_prior",
      lambda: gb.TopPrior((2, 2, 4), learntop=True, n_classes=3),
      "top_prior",
      sorted(
        _names("top_prior/top_conv", ZERO_CONV)
        + _names("top_prior", ["class_bias", "class_kernel", "class_logs"])
      ),
      sorted(
        _names("top_prior/top_conv", ZERO_CONV)
        + _names("top_prior", ["class_bias", "class_kernel", "class_logs"])
      ),
      {
        "shape": (2, 2, 4),
        "learntop": True,
        "n_classes": 3,
        "logscale_factor": 3.0,
        "precision": "float32",
        "name": "top_prior",
      },
    ),
    (
      "flow_step",
      lambda: gb.FlowStep(4, 8, "lu", "affine", rng),
      "flow_step",
      sorted(
        _names("flow_step/actnorm", ["bias", "logs"])
        + _names("flow_step/lu_conv1x1", LU + ["p", "sign_s"])
        + _names("flow_step/coupling", COUPLING_NET)
      ),
      sorted(
        _names("flow_step/actnorm", ["bias", "logs"])
        + _names("flow_step/lu_conv1x1", LU)
        + _names("flow_step/coupling", COUPLING_NET)
      ),
      {
        "channels": 4,
        "width": 8,
        "permutation": "lu",
        "coupling_kind": "affine",
        "precision": "float32",
        "name": "flow_step",
      },
    ),
  ]


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_name_variables_and_parameters(case):
  _, factory, name, variables, trainable, parameters = case
  layer = factory()
  assert layer.name == name
  assert sorted(v.name for v in layer.variables) == variables
  assert sorted(v.name for v in layer.trainable_variables) == trainable
  recorded = dict(layer.parameters)
  rng = recorded.pop("rng", None)
  assert rng is None or isinstance(rng, np.random.Generator)
  assert recorded.keys() == parameters.keys()
  for key, expected in parameters.items():
    got = recorded[key]
    got = got.tolist() if isinstance(got, np.ndarray) else got
    assert got == expected, (key, got, expected)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_flags_to_tfp(case):
  # One image [H, W, C] is one event both ways. The Jacobian is not constant (TFP would then
  # answer `TransformedDistribution.mean()` with forward(0), and its Chain combines the flag
  # with `&`, which a None breaks), and no argument checks are added to every call.
  layer = case[1]()
  assert (layer.forward_min_event_ndims, layer.inverse_min_event_ndims) == (3, 3)
  assert layer.is_constant_jacobian is False and layer.validate_args is False


def test_variable_dtypes():
  # A permutation is stored as int32 (a checkpoint of another dtype would not restore into it);
  # everything else is float32, the dtype the optimizer and the EMA expect.
  rng = np.random.default_rng(0)
  assert gb.ChannelPermutation.reverse(3).permutation.dtype.name == "int32"
  assert gb.ChannelPermutation([1, 0]).permutation.dtype.name == "int32"
  for layer in (
    gb.LUConv1x1(3, rng),
    gb.InvertibleConv1x1(3, rng),
    gb.FlowStep(4, 8, "conv", "additive", rng),
  ):
    assert {v.dtype.name for v in layer.variables} == {"float32"}, layer.name


def test_layers_record_their_channel_count():
  rng = np.random.default_rng(0)
  assert gb.ActNorm(5).channels == 5
  assert gb.LUConv1x1(5, rng).channels == 5
