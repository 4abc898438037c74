"""What happens after training: the settings of glow-eval, written once.

`EvalConfig` holds how a trained pair is measured (test set size, the nearest-neighbour
reference, the sampled translations' temperature and draws, the judged samples); glow-eval's
flags are generated from its fields (`flag_specs(EvalConfig)`), as glow-train's are from
`TrainConfig`. `TEMPERATURE` is the one default temperature of sampled translations and samples
(glow-eval, glow-serve's and the demo's requests without one): Glow's 0.7, where samples of a
small-budget model look most like the data.
"""

from collections.abc import Mapping
import dataclasses
import math
from typing import Any

from glow_tf2.config.fields import ConfigError
from glow_tf2.config.fields import setting

TEMPERATURE = 0.7
# Glow samples at T <= 1; past 2 a translation is mostly the noise. One draw has no spread.
MAX_TEMPERATURE = 2.0
MIN_DRAWS, MAX_DRAWS = 2, 100
# The judged samples: a cold, the usual and the model's own temperature.
SAMPLE_TEMPERATURES = (0.5, TEMPERATURE, 1.0)
N_SAMPLES = 500
# A Frechet distance needs a covariance of the features.
MIN_SAMPLES = 4


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """How glow-eval measures a trained run (the run itself is its config.json)."""

  n_test: int = setting(0, "Test pairs to evaluate (0: the run's --n_test; -1: the whole split).")
  n_train_reference: int = setting(
    -1,
    "Training pairs searched by the nearest-neighbour baseline (-1: the whole train split; "
    "0: skip it).",
  )
  batch_size: int = setting(64, "Images per model call.")
  seed: int = setting(0, "Seed of the dequantization noise and of the sampled translations.")
  temperature: float = setting(
    TEMPERATURE, f"A coupled run's sampled translations: T in (0, {MAX_TEMPERATURE:g}]."
  )
  draws: int = setting(
    8, f"A coupled run's translations per test input at --temperature ({MIN_DRAWS}-{MAX_DRAWS})."
  )
  judge: bool = setting(
    True, "Judge samples and translations by a classifier of each domain (problems with labels)."
  )
  judge_epochs: int = setting(
    0, "Passes over the training images of a judge trained now (0: about 40,000 images seen)."
  )
  n_samples: int = setting(N_SAMPLES, "Samples judged per side and temperature.")
  sample_temperatures: tuple[float, ...] = setting(
    SAMPLE_TEMPERATURES, "Temperatures of the judged samples."
  )
  feature_model: str | None = setting(
    None,
    "A Keras feature network (.keras/.h5 file or SavedModel folder): the samples' Frechet "
    "distance in its space (Inception-v3's pool features: FID).",
  )

  def __post_init__(self):
    if self.n_test < -1:
      raise ConfigError(f"--n_test={self.n_test}: must be -1 (the whole split), 0 or more")
    if self.n_train_reference < -1:
      raise ConfigError(
        f"--n_train_reference={self.n_train_reference}: must be -1 (the whole split), 0 or more"
      )
    if self.batch_size < 1:
      raise ConfigError(f"--batch_size={self.batch_size}: must be at least 1")
    if self.judge_epochs < 0:
      raise ConfigError(f"--judge_epochs={self.judge_epochs}: must be 0 or more")
    if not (math.isfinite(self.temperature) and 0 < self.temperature <= MAX_TEMPERATURE):
      raise ConfigError(
        f"--temperature must be in (0, {MAX_TEMPERATURE:g}], got {self.temperature}"
      )
    if not MIN_DRAWS <= self.draws <= MAX_DRAWS:
      raise ConfigError(f"--draws must be in [{MIN_DRAWS}, {MAX_DRAWS}], got {self.draws}")
    if self.n_samples < MIN_SAMPLES:
      raise ConfigError(
        f"--n_samples must be >= {MIN_SAMPLES} (a covariance), got {self.n_samples}"
      )
    temperatures = self.sample_temperatures
    if not all(math.isfinite(t) and 0 <= t <= MAX_TEMPERATURE for t in temperatures):
      raise ConfigError(
        f"--sample_temperatures must be in [0, {MAX_TEMPERATURE:g}], got {list(temperatures)}"
      )


def eval_config(values: Mapping[str, Any]) -> EvalConfig:
  """An `EvalConfig` from {field: value}, list fields as a flag gives them (strings)."""
  values = dict(values)
  if "sample_temperatures" in values:
    given = values["sample_temperatures"]
    try:
      values["sample_temperatures"] = tuple(float(t) for t in given)
    except (TypeError, ValueError):
      raise ConfigError(f"--sample_temperatures must be numbers, got {given}") from None
  return EvalConfig(**values)
