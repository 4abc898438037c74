"""A checked `TrainConfig` from {dotted field path: value} (`build`), and to and from nested dicts.

`build` takes the word choices' original integer codes and aliases, keeps the model's
placeholder image shape valid for any level count, and names the flag of the first bad field.
"""

from collections.abc import Mapping
import dataclasses
from typing import Any

from glow_tf2.config.fields import ConfigError
from glow_tf2.config.fields import parse_choice
from glow_tf2.config.model import COUPLING_CODES
from glow_tf2.config.model import COUPLINGS
from glow_tf2.config.model import DEQUANTIZATIONS
from glow_tf2.config.model import PERMUTATION_CODES
from glow_tf2.config.model import PERMUTATIONS
from glow_tf2.config.model import PRECISIONS
from glow_tf2.config.model import GlowConfig
from glow_tf2.config.model import placeholder_shape
from glow_tf2.config.parts import CODE_LOSS_FNS
from glow_tf2.config.parts import CODE_LOSS_TYPE_ALIASES
from glow_tf2.config.parts import CODE_LOSS_TYPES
from glow_tf2.config.parts import OPTIMIZERS
from glow_tf2.config.run import FIELD_FLAGS
from glow_tf2.config.run import STRATEGIES
from glow_tf2.config.run import TrainConfig
from glow_tf2.config.run import get_field

# Fields whose values are word choices, with the integer codes and aliases the flags also take.
_CHOICES: dict[str, tuple] = {
  "model.permutation": (PERMUTATIONS, PERMUTATION_CODES, None),
  "model.coupling": (COUPLINGS, COUPLING_CODES, None),
  "model.precision": (PRECISIONS, None, None),
  "model.dequantization": (DEQUANTIZATIONS, None, None),
  "optim.optimizer": (OPTIMIZERS, None, None),
  "loss.code_loss_type": (CODE_LOSS_TYPES, None, CODE_LOSS_TYPE_ALIASES),
  "loss.code_loss_fn": (CODE_LOSS_FNS, None, None),
  "strategy": (STRATEGIES, None, None),
}
# The parts of a TrainConfig, by field name: the configs nested in it.
_PARTS = {
  field.name: type(field.default)
  for field in dataclasses.fields(TrainConfig)
  if dataclasses.is_dataclass(field.default)
}


def default_of(path: str):
  """The default of a field: what `TrainConfig()` holds there (glow-train's flag defaults)."""
  return get_field(TrainConfig(), path)


def field_paths() -> tuple[str, ...]:
  """Every leaf field of a TrainConfig as a dotted path."""
  paths = []
  for field in dataclasses.fields(TrainConfig):
    if field.name in _PARTS:
      paths += [f"{field.name}.{f.name}" for f in dataclasses.fields(_PARTS[field.name])]
    else:
      paths.append(field.name)
  return tuple(paths)


def build(values: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
  """A checked TrainConfig from {dotted field path: value} over `base` (default TrainConfig()).

  Word choices take the original's integer codes too ("model.permutation": 2 -> "conv"). Raises
  ConfigError naming the flag of the first bad field.
  """
  base = base or TrainConfig()
  known = set(field_paths())
  unknown = sorted(set(values) - known)
  if unknown:
    raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
  parts: dict[str, dict[str, Any]] = {name: {} for name in _PARTS}
  top: dict[str, Any] = {}
  for path, value in values.items():
    if path in _CHOICES:
      choices, codes, aliases = _CHOICES[path]
      value = parse_choice(FIELD_FLAGS.get(path, path), value, choices, codes, aliases)
    if path == "model.image_shape":
      value = tuple(value)
    head, _, leaf = path.partition(".")
    if leaf:
      parts[head][leaf] = value
    else:
      top[path] = value
  model = parts["model"]
  levels = model.get("n_levels", base.model.n_levels)
  if "image_shape" not in model and _is_placeholder(base.model) and isinstance(levels, int):
    # Keep the placeholder shape valid for any level count; `resolve` puts the data's in.
    model["image_shape"] = placeholder_shape(levels, base.model.image_shape[2])
  for name, changes in parts.items():
    if not changes:
      continue
    try:
      top[name] = dataclasses.replace(getattr(base, name), **changes)
    except ConfigError:
      raise
    except ValueError as e:  # GlowConfig's own messages name its field; name the flag
      field = next((k for k in changes if f"GlowConfig.{k}" in str(e)), None)
      flag = FIELD_FLAGS.get(f"{name}.{field}", "image_size/--n_levels")
      shown = f"={changes[field]}" if field else ""
      raise ConfigError(f"--{flag}{shown}: {e}") from e
  return dataclasses.replace(base, **top)


def _is_placeholder(model: GlowConfig) -> bool:
  """Whether a model's image_shape is `TRAIN_MODEL`'s stand-in (2**n_levels square)."""
  placeholder = placeholder_shape(model.n_levels, model.image_shape[2])
  return model.image_shape == placeholder and model.n_classes == 0


def to_dict(config: TrainConfig) -> dict[str, Any]:
  """The config as nested JSON-able dicts (tuples as lists); `from_dict` reads it back."""
  return dataclasses.asdict(config)


def from_dict(nested: Mapping[str, Any]) -> TrainConfig:
  """`to_dict`'s output back into a checked TrainConfig (fields missing keep their defaults)."""
  values = {}
  for key, value in nested.items():
    if key in _PARTS and isinstance(value, Mapping):
      values.update({f"{key}.{k}": v for k, v in value.items()})
    else:
      values[key] = value
  return build(values)
