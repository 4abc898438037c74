"""What a config field is made of: its default, help text and glow-train flag, written once.

`setting` makes a dataclass field with its help text and flag in its metadata; `flag_specs`
lists the flags of every leaf field of a config class, which glow-train defines as absl flags
(`cli/flag_parsing.define_config_flags`, for glow-train and glow-eval). A bad run setting raises `ConfigError` naming its flag.
"""

from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import math
import types
import typing
from typing import Any


def setting(default, help: str, flag: str | None = "") -> Any:
  """A config field: its default, its help text and its glow-train flag, written once.

  Args:
    default: the field's default.
    help: what the field is: the flag's help text and the field's documentation.
    flag: the flag's name where it is not the field's ("" : the field's name); None for a field
      no flag sets (the data decide it).
  """
  return dataclasses.field(default=default, metadata={"help": help, "flag": flag})


@dataclasses.dataclass(frozen=True)
class FlagSpec:
  """One flag of a config field: its name, the field's dotted path, type, default and help."""

  flag: str
  path: str
  type: type
  default: Any
  help: str


def flag_specs(root: type, order: Sequence[str] = ()) -> tuple[FlagSpec, ...]:
  """The flag of every leaf field of the config class `root`, nested configs walked into.

  Defaults are those of `root()` (a nested config's default instance, not its class's defaults);
  types come from the annotations, `str | None` as str. Flags named in `order` come first, in
  that order; every other flag follows in field order, so a new field needs no other line.
  """
  specs = list(_leaf_specs(root(), ""))
  missing = set(order) - {spec.flag for spec in specs}
  if missing:
    raise ValueError(f"flag_specs: no field has the flag(s) {sorted(missing)}")
  rank = {flag: i for i, flag in enumerate(order)}
  return tuple(sorted(specs, key=lambda spec: rank.get(spec.flag, len(rank))))


def _leaf_specs(config, prefix: str):
  hints = typing.get_type_hints(type(config))
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    path = prefix + field.name
    if dataclasses.is_dataclass(value):
      yield from _leaf_specs(value, path + ".")
      continue
    flag = field.metadata.get("flag", "")
    if flag is None:
      continue
    help_text = field.metadata.get("help", "")
    yield FlagSpec(flag or field.name, path, _flag_type(hints[field.name], path), value, help_text)


def _flag_type(annotation, path: str) -> type:
  """bool, int, float, str or list: the type of a flag (`str | None` is a str flag, a
  `tuple[float, ...]` a comma-separated list)."""
  if typing.get_origin(annotation) in (typing.Union, types.UnionType):
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
    annotation = kinds[0] if len(kinds) == 1 else annotation
  if annotation in (bool, int, float, str):
    return annotation
  if typing.get_origin(annotation) is tuple and typing.get_args(annotation)[1:] == (...,):
    return list
  raise TypeError(
    f"{path}: a flag is a bool, int, float, str or tuple[T, ...], not {annotation}; or flag=None"
  )


class ConfigError(ValueError):
  """A bad flag value or combination; the message names the flag."""


def parse_choice(
  flag: str,
  value,
  choices,
  codes: Mapping[int, str] | None = None,
  aliases: Mapping[str, str] | None = None,
) -> str:
  """A word choice, also accepting the original's integer codes ("2" -> "conv")."""
  text = str(value).strip().lower()
  if codes is not None and text.lstrip("-").isdigit() and int(text) in codes:
    return codes[int(text)]
  if aliases and text in aliases:
    return aliases[text]
  if text in choices:
    return text
  accepted = list(choices) + ([str(k) for k in codes] if codes else [])
  raise ConfigError(f"--{flag}={value}: must be one of {', '.join(accepted)}")


def finite(value) -> bool:
  """Whether `value` is a finite number (False for a non-number)."""
  try:
    return math.isfinite(value)
  except TypeError:
    return False


def require(condition: bool, flag: str, value, why: str) -> None:
  """Raises `ConfigError("--flag=value: why")` unless `condition`."""
  if not condition:
    raise ConfigError(f"--{flag}={value}: {why}")
