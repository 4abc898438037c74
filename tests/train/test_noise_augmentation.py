"""Noise augmentation (`--noise_sigma`): the training input is the dequantised batch plus
sigma * N(0, I) from its own named stream, sliced per replica; every image a noise-augmented
model shows is denoised by one Tweedie step, in the trainer and in its SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

import glow_tf2
from glow_tf2 import denoise
from glow_tf2 import losses
from glow_tf2.config import ConfigError
from glow_tf2.config import GlowConfig
from glow_tf2.input import pipeline as input_pipeline
from glow_tf2.input import problems
from glow_tf2.serving import export
from glow_tf2.train import loop as trainer_lib
from glow_tf2.train import streams
from tests.helpers import mnist_dir
from tests.helpers import tiny_config

SIGMA = 0.05


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
  config = tiny_config(
    tmp_path_factory.mktemp("noise"), mnist_dir(tmp_path_factory), model={"noise_sigma": SIGMA}
  )
  data = config.data
  problem = problems.get_problem(data.problem, data_dir=data.data_dir, channels=data.channels)
  trainer = trainer_lib.Trainer(
    config, problem, tf.distribute.get_strategy(), input_pipeline.make_dataset
  )
  trainer.restore_or_initialize()
  return trainer


def _images(n=16, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 1)).astype(np.uint8)


def test_training_input_adds_its_own_gaussian_stream(trainer):
  steps, images = trainer.steps, _images()
  step = tf.constant(7, tf.int64)
  x = steps.training_input(images, 1, step, 0, 16).numpy()
  clean = steps.noisy(images, streams.Stream.TRAIN_NOISE, 1, step, 0, 16).numpy()
  seed = streams.seed(trainer.config.seed, streams.Stream.TRAIN_GAUSSIAN, 1, step)
  expected = clean + SIGMA * tf.random.stateless_normal([16, 32, 32, 1], seed).numpy()
  np.testing.assert_allclose(x, expected, atol=1e-6)
  assert np.std(x - clean) == pytest.approx(SIGMA, rel=0.05)
  # A replica's rows are its slice of the global batch's noise, whatever the replica count.
  half = steps.training_input(images[8:], 1, step, 8, 16).numpy()
  np.testing.assert_allclose(half, x[8:], atol=1e-6)
  # Another step, another draw.
  assert np.abs(steps.training_input(images, 1, step + 1, 0, 16).numpy() - x).max() > 0.05


def test_validation_reports_the_noised_density_beside_the_clean_one(trainer):
  """bits_per_dim_noised_<side>: the test images dequantised as for the clean figure, plus
  sigma * N(0, I) drawn from the EVAL_NOISE seed folded by `streams.gaussian`."""
  got = trainer.evaluate()
  steps, batch = trainer.steps, trainer.batch_test
  for i, side in enumerate(trainer.sides):
    bits = []
    for b, test in enumerate(trainer.test_dataset(batch)):
      images = test[side.image_key]
      n, index = len(images), tf.constant(b, tf.int64)
      x = steps.noisy(images, streams.Stream.EVAL_NOISE, i, index, 0, batch)
      seed = streams.seed(trainer.config.seed, streams.Stream.EVAL_NOISE, i, index)
      noise = tf.random.stateless_normal([batch, 32, 32, 1], streams.gaussian(seed))[:n]
      bits.append(side.ema.objective(x + SIGMA * noise)["bits_x"].numpy())
    want = np.concatenate(bits).mean()
    assert got[f"bits_per_dim_noised_{side.lower}"] == pytest.approx(want, abs=1e-4)
    assert abs(want - got[f"bits_per_dim_{side.lower}"]) > 1e-3  # not the clean figure


def test_grids_and_translations_are_denoised(trainer):
  side = trainer.sides[0]
  eps = tf.random.stateless_normal([4, side.ema.config.data_dim], [1, 2]) * 0.7
  got = side.decode(eps).numpy()
  x, _ = side.ema.glow.decode(eps)
  want = losses.postprocess(x + SIGMA**2 * denoise.score(side.ema.glow, x), 8).numpy()
  assert np.mean(got == want) > 0.99 and np.abs(got.astype(int) - want).max() <= 1
  raw = losses.postprocess(x, 8).numpy()
  assert np.mean(got != raw) > 0.01  # the step changes the images


def test_the_savedmodel_samples_denoised(trainer, tmp_path):
  glows = [side.ema.glow for side in trainer.sides]
  module = export.build_serving_module(*glows)
  assert float(module.info()["noise_sigma"]) == pytest.approx(SIGMA)
  temperature = tf.fill([3], 0.7)
  got = module.sample_b(temperature, tf.constant([4, 5, 6]))["images"].numpy()
  # Row i's noise from its own seed alone (glow_tf2/seeds.py).
  dim = glows[1].config.data_dim
  eps = tf.stack([tf.random.stateless_normal([dim], [s, export.SALT_SAMPLE]) for s in (4, 5, 6)])
  eps = eps * 0.7
  want = losses.postprocess(denoise.decode(glows[1], eps), 8).numpy()
  assert np.abs(got.astype(int) - want).max() <= 1


def test_noise_sigma_is_checked():
  with pytest.raises(ValueError, match="noise_sigma must be in"):
    GlowConfig(noise_sigma=-0.1)
  with pytest.raises(ValueError, match="noise_sigma must be in"):
    GlowConfig(noise_sigma=0.5)
  with pytest.raises(ConfigError, match="--noise_sigma=0.7"):
    glow_tf2.config.build({"model.noise_sigma": 0.7})
