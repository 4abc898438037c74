"""Every typed configuration of the package: one Glow model (`GlowConfig`) and a training run.

Configs are frozen: derived values (the data dimension, the shapes of every level, the anchored
batch sizes) are properties or methods computed from the fields, never written back.

Each setting is written once, as a field made by `setting`: its default, and in the field's
metadata its help text and, where it differs from the field's name, its glow-train flag.
glow-train defines one flag per field from these (`flag_specs`), with the default the field has
in `TrainConfig()`.

A bad `GlowConfig` raises `ValueError` naming the field. The run's configs raise `ConfigError` (a
`ValueError`) whose message starts with the flag at fault, e.g. `--n_batch_train=10: must be
divisible by the 4 replicas`, so a bad command line fails in the first second rather than after
the data is loaded or the first epoch has run. Checks that need the data set (image size,
classes, pairing) or the device count are methods (`resolve`, `check_replicas`), still run
before the model is built.

The package's modules: `fields` (`setting`, the flags of a config's fields, `ConfigError`),
`model` (`GlowConfig`), `parts` (the run's data, optimiser and loss), `run` (`TrainConfig`,
`FLAG_FIELDS`), `values` (`build`: a run from {field path: value}) and `eval` (`EvalConfig`:
what glow-eval measures after training, its flags generated the same way). Import the names from here: `from glow_tf2.config import GlowConfig`.
"""

from glow_tf2.config.eval import MAX_TEMPERATURE
from glow_tf2.config.eval import N_SAMPLES
from glow_tf2.config.eval import SAMPLE_TEMPERATURES
from glow_tf2.config.eval import TEMPERATURE
from glow_tf2.config.eval import EvalConfig
from glow_tf2.config.eval import eval_config
from glow_tf2.config.fields import ConfigError
from glow_tf2.config.fields import FlagSpec
from glow_tf2.config.fields import flag_specs
from glow_tf2.config.fields import parse_choice
from glow_tf2.config.fields import setting
from glow_tf2.config.model import COUPLING_CODES
from glow_tf2.config.model import COUPLINGS
from glow_tf2.config.model import DEQUANTIZATIONS
from glow_tf2.config.model import PERMUTATION_CODES
from glow_tf2.config.model import PERMUTATIONS
from glow_tf2.config.model import PRECISIONS
from glow_tf2.config.model import TRAIN_MODEL
from glow_tf2.config.model import GlowConfig
from glow_tf2.config.model import placeholder_shape
from glow_tf2.config.parts import CODE_LOSS_FNS
from glow_tf2.config.parts import CODE_LOSS_TYPE_ALIASES
from glow_tf2.config.parts import CODE_LOSS_TYPES
from glow_tf2.config.parts import COUPLED_FLOOR
from glow_tf2.config.parts import COUPLED_RHO_MAX
from glow_tf2.config.parts import MAX_COUNT
from glow_tf2.config.parts import OPTIMIZERS
from glow_tf2.config.parts import DataConfig
from glow_tf2.config.parts import LossConfig
from glow_tf2.config.parts import OptimConfig
from glow_tf2.config.run import FIELD_FLAGS
from glow_tf2.config.run import FLAG_FIELDS
from glow_tf2.config.run import FLAG_ORDER
from glow_tf2.config.run import MAX_SEED
from glow_tf2.config.run import STRATEGIES
from glow_tf2.config.run import TEMPERATURES
from glow_tf2.config.run import TRAIN_FLAGS
from glow_tf2.config.run import TrainConfig
from glow_tf2.config.run import get_field
from glow_tf2.config.values import build
from glow_tf2.config.values import default_of
from glow_tf2.config.values import field_paths
from glow_tf2.config.values import from_dict
from glow_tf2.config.values import to_dict

__all__ = [
  "CODE_LOSS_FNS",
  "CODE_LOSS_TYPES",
  "CODE_LOSS_TYPE_ALIASES",
  "COUPLED_FLOOR",
  "COUPLED_RHO_MAX",
  "COUPLINGS",
  "COUPLING_CODES",
  "ConfigError",
  "DEQUANTIZATIONS",
  "DataConfig",
  "EvalConfig",
  "FIELD_FLAGS",
  "FLAG_FIELDS",
  "FLAG_ORDER",
  "FlagSpec",
  "GlowConfig",
  "LossConfig",
  "MAX_COUNT",
  "MAX_SEED",
  "MAX_TEMPERATURE",
  "N_SAMPLES",
  "OPTIMIZERS",
  "OptimConfig",
  "PERMUTATIONS",
  "PERMUTATION_CODES",
  "PRECISIONS",
  "SAMPLE_TEMPERATURES",
  "STRATEGIES",
  "TEMPERATURE",
  "TEMPERATURES",
  "TRAIN_FLAGS",
  "TRAIN_MODEL",
  "TrainConfig",
  "build",
  "default_of",
  "eval_config",
  "field_paths",
  "flag_specs",
  "from_dict",
  "get_field",
  "parse_choice",
  "placeholder_shape",
  "setting",
  "to_dict",
]
