"""Sample quality at every validation: the EMA models' samples and translations, judged.

With `--judge_samples=N` (> 0) on a problem with class labels, the run gets a classifier of each
domain (`quality.judge.judge_for`, cached in the problem's `judges_dir`, trained there on first
use) and, at every validation, draws N samples per side at each temperature of `TEMPERATURES`
from fixed latents (the same at every epoch, so curves compare), and scores them as glow-eval
does (`quality.scores`): the fraction classified with p >= 0.9, the class entropy over log K and
the Frechet distance to the real test images. A pair also scores the T = 0 translations of the
first N test pairs: the fraction whose class is their source's label. The scalars are named

    sample_confident_{a,b}_T{t}, sample_entropy_ratio_{a,b}_T{t}, sample_frechet_{a,b}_T{t},
    sample_saturated_{a,b}_T{t}, sample_frechet_floor_{a,b}, translation_labels_{a2b,b2a}

and go to TensorBoard under eval/ with the validation's other metrics.
"""

import numpy as np
import tensorflow as tf

from glow_tf2 import config as config_lib
from glow_tf2.quality import frechet
from glow_tf2.quality import judge as judge_lib
from glow_tf2.quality import scores
from glow_tf2.train import streams

TEMPERATURES = config_lib.SAMPLE_TEMPERATURES
MAX_TRAIN_IMAGES = judge_lib.MAX_TRAIN_IMAGES


def metric_names(keys) -> list[str]:
  """The scalar names the judge writes for sides `keys` ("A", "B")."""
  names = []
  for key in keys:
    side = key.lower()
    for t in TEMPERATURES:
      names += [
        f"sample_{m}_{side}_T{t:g}" for m in ("confident", "entropy_ratio", "frechet", "saturated")
      ]
    names.append(f"sample_frechet_floor_{side}")
  if len(keys) == 2:
    names += ["translation_labels_a2b", "translation_labels_b2a"]
  return names


def _collect(dataset, limit: int) -> dict[str, np.ndarray]:
  parts: dict[str, list] = {}
  count = 0
  for batch in dataset:
    for key, value in batch.items():
      parts.setdefault(key, []).append(value.numpy())
    count += len(batch["image_a"])
    if count >= limit:
      break
  return {key: np.concatenate(value)[:limit] for key, value in parts.items()}


class SampleJudge:
  """The classifiers of a run's domains and what they are compared with.

  Args:
    trainer: the `loop.Trainer` (its problem, sides, seed).
    train, test: the run's training and test datasets, in order (batches of dicts).
    n: samples per side and temperature; also the test pairs translated.
    log: called with a line when a judge is trained.
  """

  def __init__(self, trainer, train, test, n: int, log=print):
    problem = trainer.problem
    self.n = n
    self.n_classes = int(problem.n_classes or 0)
    train = _collect(train, MAX_TRAIN_IMAGES)
    test = _collect(test, 10**9)
    self.judges, self.references, self.floors = {}, {}, {}
    for side in trainer.sides:
      judge = judge_lib.judge_for(
        problem.judges_dir,
        side.key,
        train[side.image_key],
        train["label"],
        self.n_classes,
        test[side.image_key],
        test["label"],
        log=log,
      )
      features = judge.features(test[side.image_key])
      self.judges[side.key] = judge
      self.references[side.key] = frechet.fit_gaussian(features)
      self.floors[side.key] = scores.floor(features)
    self.test = {key: value[:n] for key, value in test.items()}
    data_dim = trainer.glow_config.data_dim
    self.latents = {
      side.key: tf.random.stateless_normal(
        [n, data_dim], streams.seed(trainer.config.seed, streams.Stream.SAMPLE_LATENT, i, 1)
      )
      for i, side in enumerate(trainer.sides)
    }
    self.labels = np.arange(n) % self.n_classes if trainer.ycond else None

  def _decode(self, side, eps):
    labels = None if self.labels is None else tf.constant(self.labels, tf.int32)
    return np.concatenate(
      [
        side.decode(eps[i : i + 64], None if labels is None else labels[i : i + 64]).numpy()
        for i in range(0, self.n, 64)
      ]
    )

  def scores(self, trainer) -> dict[str, float]:
    """The scalars of the module docstring, for the trainer's EMA models now."""
    out = {}
    for side in trainer.sides:
      lower, judge = side.lower, self.judges[side.key]
      for t in TEMPERATURES:
        images = self._decode(side, t * self.latents[side.key])
        s = scores.judge_images(judge, images, self.references[side.key])
        out[f"sample_confident_{lower}_T{t:g}"] = s["confident"]
        out[f"sample_entropy_ratio_{lower}_T{t:g}"] = s["class_entropy_ratio"]
        out[f"sample_frechet_{lower}_T{t:g}"] = s["frechet"]
        out[f"sample_saturated_{lower}_T{t:g}"] = s["saturated"]
      out[f"sample_frechet_floor_{lower}"] = self.floors[side.key]
    if len(trainer.sides) == 2:
      a, b = trainer.sides
      labels = self.test.get("label") if trainer.ycond else None
      for source, target in ((a, b), (b, a)):
        images = np.concatenate(
          [
            trainer.translate(
              self.test[source.image_key][i : i + 64],
              source,
              target,
              None if labels is None else labels[i : i + 64],
            )
            for i in range(0, len(self.test["label"]), 64)
          ]
        )
        probs = self.judges[target.key].probabilities(images)
        out[f"translation_labels_{source.lower}2{target.lower}"] = scores.label_agreement(
          probs, self.test["label"]
        )
    return out
