"""--judge_samples: at every validation the trainer judges its EMA models' samples and
translations with a classifier of each domain; the scalars are the scores of these images."""

import glob

import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.quality import frechet
from glow_tf2.quality import judge as judge_lib
from glow_tf2.quality import scores
from glow_tf2.train import judging
from glow_tf2.train import loop as trainer_lib
from glow_tf2.train import outputs
from glow_tf2.train import streams
from tests.helpers import mnist_dir
from tests.helpers import tiny_config

N = 12


def _arrays(dataset, limit):
  parts = {}
  for batch in dataset:
    for k, v in batch.items():
      parts.setdefault(k, []).append(v.numpy())
  return {k: np.concatenate(v)[:limit] for k, v in parts.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  # Judges of the first 600 training pairs: the scores' plumbing, not a good judge, is tested here.
  patch = pytest.MonkeyPatch()
  patch.setattr(judging, "MAX_TRAIN_IMAGES", 600)
  config = tiny_config(
    tmp_path_factory.mktemp("judged"), mnist_dir(tmp_path_factory), epochs=1, judge_samples=N
  )
  data = config.data
  problem = problems.get_problem(data.problem, data_dir=data.data_dir, channels=data.channels)
  trainer = trainer_lib.Trainer(
    config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset
  )
  # Judges of one quick epoch, trained here on exactly what the trainer will read: it finds
  # them in the problem's cache instead of training its own for a minute.
  train = _arrays(
    trainer.dataset("train", 256, shuffle=False, repeat=False), judging.MAX_TRAIN_IMAGES
  )
  test = _arrays(trainer.dataset("test", 256, shuffle=False, repeat=False), data.n_test)
  judges = {
    key: judge_lib.judge_for(
      problem.judges_dir,
      key,
      train[f"image_{key.lower()}"],
      train["label"],
      10,
      test[f"image_{key.lower()}"],
      test["label"],
      epochs=1,
    )
    for key in ("A", "B")
  }
  trainer.fit()
  scalars = {}
  for path in glob.glob(f"{config.logdir}/events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag.startswith("eval/"):
          scalars[value.tag] = float(tf.make_ndarray(value.tensor))
  patch.undo()
  return dict(trainer=trainer, judges=judges, test=test, scalars=scalars)


def test_every_scalar_is_written(trained):
  names = judging.metric_names(("A", "B"))
  assert {f"eval/{n}" for n in names} <= set(trained["scalars"])
  assert "sample_confident_b_T0.7" in names and "translation_labels_b2a" in names


def test_the_scalars_are_the_scores_of_the_ema_samples(trained):
  trainer, judges, test = trained["trainer"], trained["judges"], trained["test"]
  for i, side in enumerate(trainer.sides):
    seed = streams.seed(trainer.config.seed, streams.Stream.SAMPLE_LATENT, i, 1)
    eps = tf.random.stateless_normal([N, trainer.glow_config.data_dim], seed)
    features = judges[side.key].features(test[side.image_key])
    reference = frechet.fit_gaussian(features)
    for t in judging.TEMPERATURES:
      images = side.decode(t * eps).numpy()
      want = scores.judge_images(judges[side.key], images, reference)
      got = trained["scalars"]
      assert got[f"eval/sample_confident_{side.lower}_T{t:g}"] == pytest.approx(want["confident"])
      assert got[f"eval/sample_frechet_{side.lower}_T{t:g}"] == pytest.approx(
        want["frechet"], rel=1e-4
      )
    assert trained["scalars"][f"eval/sample_frechet_floor_{side.lower}"] == pytest.approx(
      scores.floor(features), rel=1e-4
    )
  a, b = trainer.sides
  translated = trainer.translate(test["image_a"][:N], a, b)
  agree = np.mean(judges["B"].probabilities(translated).argmax(1) == test["label"][:N])
  assert trained["scalars"]["eval/translation_labels_a2b"] == pytest.approx(agree)


def test_hparams_declare_the_judged_metrics(tmp_path):
  out = outputs.Outputs(str(tmp_path), {"judge_samples": 8}, ("A",), 32, 0)
  assert "eval/sample_frechet_a_T1" in out.metric_tags()
  off = outputs.Outputs(str(tmp_path / "off"), {"judge_samples": 0}, ("A",), 32, 0)
  assert not any("sample_" in tag for tag in off.metric_tags())
