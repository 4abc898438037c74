"""The domain classifier judges real digits as digits and noise as nothing; its cache; a user's
feature network."""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from glow_tf2.input import embedded
from glow_tf2.quality import frechet
from glow_tf2.quality import judge
from glow_tf2.quality import scores


@pytest.fixture(scope="module")
def digits():
  """Domain A of the mnist problem (the padded digit, 32x32x1): 2,000 train, 500 test."""
  splits = embedded.mnist_splits()
  (x_train, y_train), (x_test, y_test) = splits["train"], splits["validation"]
  a_train, _ = embedded.mnist_pairs(x_train[:2000], 1)
  a_test, _ = embedded.mnist_pairs(x_test, 1)
  return a_train, y_train[:2000], a_test, y_test


@pytest.fixture(scope="module")
def classifier(digits):
  a_train, y_train, a_test, y_test = digits
  return judge.train_classifier(a_train, y_train, 10, a_test, y_test, epochs=4, seed=0)


def test_classifier_accuracy(classifier, digits):
  _, _, a_test, y_test = digits
  assert classifier.test_accuracy >= 0.88
  assert classifier.test_accuracy == pytest.approx(
    np.mean(np.argmax(classifier.probabilities(a_test), 1) == y_test)
  )
  feats, probs = classifier.features_and_probabilities(a_test[:7])
  assert feats.shape == (7, 128) and probs.shape == (7, 10)
  np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_real_images_near_the_floor_noise_far(classifier, digits):
  a_train, _, a_test, _ = digits
  reference, real = scores.real_reference(classifier, a_test)
  floor = real["frechet"]
  assert floor == pytest.approx(
    frechet.feature_distance(*(classifier.features(a_test)[i::2] for i in (0, 1)))
  )
  assert real["confident"] >= 0.7 and real["class_entropy_ratio"] >= 0.97
  other_real = scores.judge_images(classifier, a_train[:500], reference)
  assert other_real["frechet"] <= 2.0 * floor
  assert other_real["confident"] >= 0.7
  rng = np.random.default_rng(0)
  noise = rng.integers(0, 256, (500, 32, 32, 1)).astype(np.uint8)
  scored = scores.judge_images(classifier, noise, reference)
  assert scored["frechet"] >= 20.0 * floor
  assert scored["confident"] <= 0.1  # the junk the judge was shown
  # One digit repeated: confident, but one class and far from the data.
  one = scores.judge_images(classifier, np.repeat(a_test[:1], 500, 0), reference)
  assert one["class_entropy"] == 0.0 and one["frechet"] >= 5.0 * floor


def test_label_agreement(classifier, digits):
  _, _, a_test, y_test = digits
  probs = classifier.probabilities(a_test)
  assert scores.label_agreement(probs, y_test) == pytest.approx(classifier.test_accuracy)
  assert scores.label_agreement(probs, (y_test + 1) % 10) <= 0.05
  with pytest.raises(ValueError, match="labels"):
    scores.label_agreement(probs, y_test[:3])


def test_scores_by_hand():
  p = np.array([[0.95, 0.05], [0.5, 0.5], [0.1, 0.9], [0.2, 0.8]])
  assert scores.confident_fraction(p) == 0.5
  assert scores.confident_fraction(p, 0.95) == 0.25
  # argmax classes 0, 0 (tie: the first), 1, 1: two equal classes.
  assert scores.class_entropy(p) == pytest.approx(math.log(2))
  assert scores.class_entropy(p[:2]) == 0.0
  three = np.eye(3)[[0, 0, 1, 2]]
  assert scores.class_entropy(three) == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25)))
  with pytest.raises(ValueError, match="at least 4"):
    scores.floor(np.zeros((3, 2)))
  # Saturated: more than 97% of an image's pixels at 0 or 255.
  images = np.full((4, 10, 10), 128, np.uint8)
  images[0] = 0  # all black
  images[1, :, :] = 255
  images[1, 0, :3] = 7  # 97% exactly: not more than 97%
  images[2] = 0
  images[2, 0, :2] = 100  # 98%
  assert scores.saturated_fraction(images) == 0.5


def test_junk_images(digits):
  a_train = digits[0]
  junk = judge.junk_images(a_train, 10, np.random.default_rng(0))
  assert junk.shape == (10, 32, 32, 1) and junk.dtype == np.uint8
  # The shuffled half keeps each image's histogram of some real image.
  hist = {tuple(np.bincount(x.ravel(), minlength=256)) for x in a_train}
  assert all(tuple(np.bincount(x.ravel(), minlength=256)) in hist for x in junk[5:])


def test_bad_training_input():
  x = np.zeros((4, 8, 8, 1), np.uint8)
  with pytest.raises(ValueError, match="labels must be in"):
    judge.train_classifier(x, [0, 1, 2, 5], 3)
  with pytest.raises(ValueError, match="need as many"):
    judge.train_classifier(x, [0, 1], 3)
  with pytest.raises(ValueError, match="at least 2 classes"):
    judge.build_network((8, 8, 1), 1)


def _small(seed=0, n=64):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, 8, 8, 1)).astype(np.uint8), rng.integers(0, 3, n)


def test_cache_trains_once_and_retrains_on_new_data(tmp_path):
  x, y = _small()
  lines = []
  first = judge.judge_for(str(tmp_path), "A", x, y, 3, x[:16], y[:16], log=lines.append)
  assert len(lines) == 1 and "training the judge of domain A" in lines[0]
  files = sorted(os.listdir(tmp_path))
  assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".keras")
  meta = json.load(open(tmp_path / files[0]))
  assert meta["test_accuracy"] == pytest.approx(first.test_accuracy)
  assert meta["n_train"] == 64 and meta["recipe"] == judge.RECIPE
  again = judge.judge_for(str(tmp_path), "A", x, y, 3, x[:16], y[:16], log=lines.append)
  assert len(lines) == 1  # loaded, not trained
  np.testing.assert_allclose(again.probabilities(x), first.probabilities(x), rtol=1e-5, atol=1e-6)
  assert again.test_accuracy == pytest.approx(first.test_accuracy)
  # New data: a new judge, and the old one's files are gone.
  x2, y2 = _small(seed=1)
  judge.judge_for(str(tmp_path), "A", x2, y2, 3, x2[:16], y2[:16], log=lines.append)
  assert len(lines) == 2
  assert len(os.listdir(tmp_path)) == 2 and not set(files) & set(os.listdir(tmp_path))
  # A .keras file without its sidecar is an interrupted save: trained again.
  os.remove(next(str(p) for p in tmp_path.iterdir() if p.suffix == ".json"))
  judge.judge_for(str(tmp_path), "A", x2, y2, 3, x2[:16], y2[:16], log=lines.append)
  assert len(lines) == 3
  assert judge.data_digest(x, y) != judge.data_digest(x, (y + 1) % 3)


def _feature_model(channels=3):
  inputs = keras.Input((16, 16, channels))
  h = keras.layers.Conv2D(6, 3, kernel_initializer=keras.initializers.GlorotUniform(seed=1))(inputs)
  return keras.Model(inputs, h)  # rank 4: the judge averages its spatial axes


def test_feature_model_keras_file(tmp_path, digits):
  model = _feature_model()
  path = str(tmp_path / "features.keras")
  model.save(path)
  net = judge.FeatureNet(path)
  images = digits[2][:5]  # 32x32x1: resized to 16x16 and given three channels
  got = net.features(images)
  x = tf.image.resize(tf.constant(images, tf.float32) / 127.5 - 1.0, (16, 16))
  expected = model(tf.repeat(x, 3, axis=-1)).numpy().mean(axis=(1, 2))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  reference = frechet.fit_gaussian(net.features(digits[2]))
  scored = scores.judge_images(net, digits[2][:100], reference)
  assert set(scored) == {"frechet", "saturated", "n"} and scored["frechet"] >= 0.0


def test_feature_model_saved_model(tmp_path, digits):
  model = _feature_model(channels=1)
  model.export(str(tmp_path / "sm"), verbose=False)  # a SavedModel with serving_default
  net = judge.FeatureNet(str(tmp_path / "sm"))
  images = digits[2][:4]
  x = tf.image.resize(tf.constant(images, tf.float32) / 127.5 - 1.0, (16, 16))
  np.testing.assert_allclose(
    net.features(images), model(x).numpy().mean(axis=(1, 2)), rtol=1e-5, atol=1e-6
  )


def test_feature_model_bad_paths(tmp_path):
  with pytest.raises(FileNotFoundError, match="--feature_model"):
    judge.FeatureNet(str(tmp_path / "missing.keras"))
  bad = tmp_path / "bad.keras"
  bad.write_text("not a model")
  with pytest.raises(ValueError, match="not a Keras model"):
    judge.FeatureNet(str(bad))
