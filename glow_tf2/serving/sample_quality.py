"""Whether a model's samples and translations look like the data, by judges (`glow_tf2.quality`).

Metrics (nested under `metrics` in glow-eval's report; T keys are "T0.5", "T0.7", "T1"):

  sample_quality.{a,b}.judge
      what judged the side: {"kind": "classifier", "test_accuracy", "path"} for the domain's
      classifier, trained on its training images (`quality.judge.judge_for`).
  sample_quality.{a,b}.real.{confident,class_entropy,class_entropy_ratio,frechet,saturated,n}
      the real test images' own scores; their `frechet` is the floor, the distance between the
      even and odd halves of the test images (`quality.scores`).
  sample_quality.{a,b}.T<t>.{confident,class_entropy,class_entropy_ratio,frechet,saturated,n}
      N samples of the side at temperature t (`sample_<side>`, sample k from the row seed
      seed + k: the same eps at every t and any batch size), against the real test images'
      features.
  feature_model.{a,b}.{judge,real,T<t>}
      with a user's feature network (glow-eval --feature_model): `frechet` alone (FID with
      Inception-v3's pool features).
  translation_labels.{a2b,b2a}.T<t>
      the fraction of translations whose class, by the target side's classifier, is the
      source's label: at T = 0 (the translation of `translation`) and, for a coupled pair, at
      the sampled translations' temperature (every draw counted).
"""

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from glow_tf2 import config as config_lib
from glow_tf2 import image_grid
from glow_tf2 import seeds as seeds_lib
from glow_tf2.quality import scores
from glow_tf2.serving import signature_inputs

TEMPERATURES = config_lib.SAMPLE_TEMPERATURES
N_SAMPLES = config_lib.N_SAMPLES
# Seeds of samples of an export with one seed per call, drawn one at a time after their batch
# overflowed: apart from the batch seeds.
ROW_SEEDS = 100_003


def temperature_key(t: float) -> str:
  return f"T{float(t):g}"


def draw_samples(
  module, side: str, n: int, temperature: float, seed: int, batch_size: int, n_classes: int = 0
):
  """n samples of `side` at `temperature`: uint8 `[n, H, W, C]`; sample k from the seed seed + k.

  The row seeds are `glow_tf2.seeds.per_row(seed, n)`, so a sample is the same in any batch.
  A class-conditional model samples the classes 0, 1, ..., K-1, 0, ... in turn. A SavedModel
  exported before per-row seeds takes one seed per call: batch i gets seed + i.

  A batch the module refuses because the flow overflowed on some of its draws is drawn again
  one sample at a time (each from its own row seed, so the samples that do not overflow are
  the batch's; an older export gives sample j of batch i the seed (seed + i) * ROW_SEEDS + j + 1),
  and a sample that still overflows is a black image: it counts as what it is, a failed sample
  (unconfident and saturated), without the rest of its batch.
  """
  fn = getattr(module, f"sample_{side}")
  seeds = seeds_lib.per_row(seed, n) if "seed_per_row" in module.info() else None

  def draw(size, start, call_seed):
    args = [tf.fill([size], tf.constant(temperature, tf.float32))]
    if seeds is None:
      args.append(tf.constant(call_seed, tf.int32))
    else:
      args.append(tf.constant(seeds[start : start + size]))
    if n_classes:
      args.append(tf.constant(np.arange(start, start + size) % n_classes, tf.int32))
    return np.asarray(fn(*args)["images"])

  out = []
  for i, start in enumerate(range(0, n, batch_size)):
    size = min(batch_size, n - start)
    try:
      out.append(draw(size, start, seed + i))
    except tf.errors.InvalidArgumentError as e:
      if signature_inputs.OVERFLOW not in str(e):
        raise
      rows = []
      for j in range(size):
        try:
          rows.append(draw(1, start + j, ((seed + i) * ROW_SEEDS + j + 1) % 2**31))
        except tf.errors.InvalidArgumentError as row_error:
          if signature_inputs.OVERFLOW not in str(row_error):
            raise
          rows.append(None)
      shape = next((r.shape[1:] for r in rows if r is not None), None)
      if shape is None:  # every draw overflowed: the model's image shape from its info
        shape = tuple(int(d) for d in module.info()["image_shape"].numpy())
      rows = [np.zeros((1, *shape), np.uint8) if r is None else r for r in rows]
      out.append(np.concatenate(rows))
  return np.concatenate(out)


def judge_samples(
  module,
  judges: Mapping[str, Any],
  test_images: Mapping[str, np.ndarray],
  n: int = N_SAMPLES,
  temperatures: Sequence[float] = TEMPERATURES,
  seed: int = 0,
  batch_size: int = 64,
  n_classes: int = 0,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """({side: {"judge", "real", "T<t>": scores}}, {side: samples [len(temperatures), 8, ...]}).

  Args:
    module: a serving module or SavedModel with `sample_a` (and `sample_b`).
    judges: {side: judge} for the sides to judge.
    test_images: {side: uint8 real test images}, the reference of each side.
    n: samples per side and temperature.
    temperatures: T >= 0 of the samples.
    seed, batch_size, n_classes: as `draw_samples`.
  """
  metrics, figure = {}, {}
  for side, judge in judges.items():
    reference, real = scores.real_reference(judge, test_images[side])
    result = {"judge": judge.info(), "real": real}
    rows = []
    for t in temperatures:
      samples = draw_samples(module, side, n, t, seed, batch_size, n_classes)
      result[temperature_key(t)] = scores.judge_images(judge, samples, reference)
      rows.append(samples[:8])
    metrics[side] = result
    figure[side] = np.stack(rows)
  return metrics, figure


def translation_labels(judges: Mapping[str, Any], translations, classes) -> dict[str, Any]:
  """{direction: {"T<t>": agreement}} for {direction: {t: uint8 images [..., N, H, W, C]}}.

  Leading axes before N (draws) are flattened; every draw is compared with its source's label.
  Only directions whose target side has a classifier are scored.
  """
  classes = np.asarray(classes).reshape(-1)
  out = {}
  for direction, by_temperature in translations.items():
    judge = judges.get(direction[-1])
    if judge is None or not hasattr(judge, "probabilities"):
      continue
    result = {}
    for t, images in by_temperature.items():
      images = np.asarray(images)
      repeats = int(np.prod(images.shape[:-4], dtype=np.int64))
      flat = images.reshape(-1, *images.shape[-3:])
      result[temperature_key(t)] = scores.label_agreement(
        judge.probabilities(flat), np.tile(classes, repeats)
      )
    out[direction] = result
  return out


def format_table(metrics: Mapping[str, Any]) -> list[str]:
  """Lines of glow-eval's table for the sample-quality metrics present in `metrics`."""
  lines = []
  for key, title in (("sample_quality", "classifier"), ("feature_model", "feature model")):
    if key not in metrics:
      continue
    lines.append("")
    lines.append(
      f"samples judged by the {title}: confident (p >= 0.9) / class entropy / log K / Frechet / "
      "saturated"
    )
    for side, result in metrics[key].items():
      judge = result["judge"]
      accuracy = judge.get("test_accuracy")
      about = f" (judge's test accuracy {accuracy:.3f})" if accuracy is not None else ""
      lines.append(f"  {side.upper()}{about}")
      for name, s in result.items():
        if name == "judge":
          continue
        label = (
          "real test images (floor)" if name == "real" else f"samples at {name[0]} = {name[1:]}"
        )
        if "confident" in s:
          lines.append(
            f"    {label:<26}{s['confident']:7.3f}{s['class_entropy_ratio']:8.3f}"
            f"{s['frechet']:10.2f}{s['saturated']:8.3f}"
          )
        else:
          lines.append(f"    {label:<26}{'':15}{s['frechet']:10.2f}{s['saturated']:8.3f}")
  if "translation_labels" in metrics:
    lines.append("")
    lines.append("translations keeping the source's label (target side's classifier):")
    for direction, result in metrics["translation_labels"].items():
      cells = "   ".join(f"{k[0]} = {k[1:]}: {v:.3f}" for k, v in result.items())
      lines.append(f"  {direction[0].upper()} -> {direction[-1].upper()}: {cells}")
  return lines


def save_samples_figure(report: Mapping[str, Any], path: str) -> str | None:
  """PNG of the judged samples: per side, a row of 8 per temperature (blank row between sides).

  Returns the path, or None when the report judged no samples.
  """
  figure = report.get("sample_images")
  if not figure:
    return None
  image_grid.save_row_groups(path, [list(figure[side]) for side in sorted(figure)])
  return path
