"""Judges of images: a small classifier of one domain, or a user's feature network.

A judge maps uint8 images `[N, H, W, C]` to features `[N, F]` (what the Frechet distance
compares) and, when it is a classifier, to class probabilities `[N, K]` (what the confidence,
the class spread and the label agreement of `quality.scores` read). Samples of a generative
model that the judge classifies confidently, into many classes, with features distributed like
the real images', look like the data to that judge: the idea of the Inception score and FID
(Salimans et al., 2016; Heusel et al., 2017) with a network trained on the domain itself, as is
usual for MNIST-like data where Inception's ImageNet features say little.

`Classifier` is a five-layer CNN (two strided 3x3 stages, a 128-unit penultimate layer, a softmax)
trained with Adam on one domain's training images in a few seconds to a minute on a CPU; its
test accuracy is measured and stored with it. `judge_for` caches it as a `.keras` file under a
folder (glow-eval: beside the problem's data), named by a digest of the images and labels it was
trained on, so a change of data trains a new one. `FeatureNet` wraps any Keras model or
SavedModel the user has on disk (Inception-v3's pool features give the standard FID).
"""

import dataclasses
import glob
import hashlib
import json
import os
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf

# Bumped when the architecture or the training recipe changes: cached judges are then retrained.
RECIPE = "cnn32-64-128/adam1e-3/junk-uniform/v2"
FEATURES_LAYER = "features"
# How many training images a judge learns from at most (the first ones of the split): enough for
# a 32x32 classifier, a bound on the memory a large data set's judge takes, and one judge shared
# by the trainer and glow-eval, which both take this many.
MAX_TRAIN_IMAGES = 20000


class Judge(Protocol):
  """What the scores need of a judge."""

  name: str

  def features(self, images) -> np.ndarray: ...


def _batched(fn, images, batch_size: int = 256) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"judge: images must be [N, H, W, C], got shape {images.shape}")
  parts = [fn(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
  return np.concatenate(parts) if parts else np.zeros((0,))


def build_network(image_shape, n_classes: int, seed: int = 0) -> keras.Model:
  """The classifier: uint8-range input, features (ReLU, 128) and class probabilities."""
  if n_classes < 2:
    raise ValueError(f"judge: a classifier needs at least 2 classes, got {n_classes}")

  def init(i):
    return keras.initializers.GlorotUniform(seed=seed * 100 + i)

  inputs = keras.Input(tuple(image_shape), name="images")
  h = keras.layers.Rescaling(1.0 / 255.0)(inputs)
  for i, (filters, strides) in enumerate(((32, 1), (32, 2), (64, 1), (64, 2))):
    h = keras.layers.Conv2D(
      filters, 3, strides=strides, padding="same", activation="relu", kernel_initializer=init(i)
    )(h)
  h = keras.layers.Flatten()(h)
  features = keras.layers.Dense(
    128, activation="relu", kernel_initializer=init(5), name=FEATURES_LAYER
  )(h)
  probs = keras.layers.Dense(n_classes, activation="softmax", kernel_initializer=init(6))(features)
  return keras.Model(inputs, probs, name="judge")


@dataclasses.dataclass
class Classifier:
  """A trained domain classifier and what is known of it.

  Attributes:
    network: the Keras model (`build_network`), images -> probabilities.
    test_accuracy: its accuracy on the domain's test images (NaN if not measured).
    name: what reports call it.
    path: the file it was loaded from or saved to, if any.
  """

  network: keras.Model
  test_accuracy: float = float("nan")
  name: str = "classifier"
  path: str | None = None

  def __post_init__(self):
    self._both = keras.Model(
      self.network.inputs,
      [self.network.get_layer(FEATURES_LAYER).output, self.network.outputs[0]],
    )
    shape = [None, *self.network.inputs[0].shape[1:]]
    self._call = tf.function(
      lambda x: self._both(x, training=False),
      input_signature=[tf.TensorSpec(shape, tf.float32)],
      autograph=False,
    )

  @property
  def n_classes(self) -> int:
    return int(self.network.outputs[0].shape[-1])

  def features_and_probabilities(self, images) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features `[N, 128]` and class probabilities `[N, K]` of uint8 images."""
    images = np.asarray(images)
    if images.ndim != 4:
      raise ValueError(f"judge: images must be [N, H, W, C], got shape {images.shape}")
    expected = tuple(self.network.inputs[0].shape[1:])
    if images.shape[1:] != expected:
      raise ValueError(f"judge: images are {images.shape[1:]}, the classifier takes {expected}")
    feats, probs = [], []
    for i in range(0, len(images), 256):
      f, p = self._call(tf.constant(images[i : i + 256], tf.float32))
      feats.append(f.numpy())
      probs.append(p.numpy())
    return np.concatenate(feats), np.concatenate(probs)

  def features(self, images) -> np.ndarray:
    return self.features_and_probabilities(images)[0]

  def probabilities(self, images) -> np.ndarray:
    return self.features_and_probabilities(images)[1]

  def info(self) -> dict:
    return {"kind": "classifier", "test_accuracy": self.test_accuracy, "path": self.path}


def junk_images(images, count: int, rng: np.random.Generator) -> np.ndarray:
  """Images that look like nothing: uniform noise and real images with their pixels shuffled.

  Half are uniform noise between a random dark and a random light level; half are real images
  whose pixel positions are permuted (the data's own histogram, no shape). Trained towards the
  uniform distribution over classes, they teach the judge to be unsure of what is not an image
  of the domain ("outlier exposure", Hendrycks et al., 2019); a plain classifier calls almost
  all uniform noise confidently one class.
  """
  images = np.asarray(images)
  shape = images.shape[1:]
  n_noise = count // 2
  low = rng.integers(0, 128, (n_noise, 1, 1, 1))
  high = low + rng.integers(32, 256 - low + 1, (n_noise, 1, 1, 1))
  noise = low + rng.random((n_noise, *shape)) * (high - low)
  picked = images[rng.integers(0, len(images), count - n_noise)].reshape(count - n_noise, -1)
  shuffled = np.take_along_axis(picked, rng.permuted(np.indices(picked.shape)[1], axis=1), axis=1)
  return np.concatenate([noise.astype(np.uint8), shuffled.reshape(-1, *shape)])


def train_classifier(
  images,
  labels,
  n_classes: int,
  test_images=None,
  test_labels=None,
  epochs: int | None = None,
  batch_size: int = 128,
  seed: int = 0,
) -> Classifier:
  """A `Classifier` trained on uint8 images `[N, H, W, C]` with int labels in [0, n_classes).

  Each epoch adds N / 4 fresh `junk_images` with the uniform target. `epochs` defaults to
  enough passes for about 40,000 real images seen (at least 2, at most 8): under a minute on
  2 CPU cores at 32x32. Each epoch's junk and order come from `seed`: one seed, one classifier.
  """
  images = np.asarray(images)
  labels = np.asarray(labels, np.int64).reshape(-1)
  if len(images) != len(labels) or len(images) < 2:
    raise ValueError(f"judge: {len(images)} images and {len(labels)} labels: need as many, >= 2")
  if labels.min() < 0 or labels.max() >= n_classes:
    raise ValueError(
      f"judge: labels must be in [0, {n_classes}), got [{labels.min()}, {labels.max()}]"
    )
  network = build_network(images.shape[1:], n_classes, seed)
  network.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
  epochs = epochs or int(np.clip(round(40000 / len(images)), 2, 8))
  rng = np.random.default_rng(seed)
  targets = np.eye(n_classes, dtype=np.float32)[labels]
  for _ in range(epochs):
    junk = junk_images(images, max(1, len(images) // 4), rng)
    x = np.concatenate([images, junk]).astype(np.float32)
    y = np.concatenate([targets, np.full((len(junk), n_classes), 1.0 / n_classes, np.float32)])
    order = rng.permutation(len(x))
    network.fit(x[order], y[order], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
  judge = Classifier(network)
  if test_images is not None and test_labels is not None:
    judge.test_accuracy = accuracy(judge.probabilities(test_images), test_labels)
  return judge


def accuracy(probabilities, labels) -> float:
  """Fraction of rows whose most probable class is the label."""
  labels = np.asarray(labels).reshape(-1)
  return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def data_digest(images, labels) -> str:
  """A hex digest of the training images, their labels and the judge's recipe."""
  h = hashlib.sha256(RECIPE.encode())
  images = np.ascontiguousarray(images, np.uint8)
  h.update(str(images.shape).encode())
  h.update(images.tobytes())
  h.update(np.ascontiguousarray(labels, np.int64).tobytes())
  return h.hexdigest()[:16]


def save(judge: Classifier, path: str, extra: dict | None = None) -> None:
  """`path` (.keras) and its `.json` sidecar, each written to a temporary name, then renamed."""
  if not path.endswith(".keras"):
    raise ValueError(f"judge: {path}: a classifier is saved as a .keras file")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path[: -len('.keras')]}.tmp{os.getpid()}.keras"
  judge.network.save(tmp)
  meta = {"recipe": RECIPE, "test_accuracy": judge.test_accuracy, **(extra or {})}
  with open(tmp + ".json", "w") as f:
    json.dump(meta, f, indent=2)
  # The sidecar last: a .keras file without its .json is not taken as a finished judge.
  os.replace(tmp, path)
  os.replace(tmp + ".json", _sidecar(path))
  judge.path = path


def _sidecar(path: str) -> str:
  return path[: -len(".keras")] + ".json"


def load(path: str) -> Classifier:
  """A classifier saved by `save`."""
  with open(_sidecar(path)) as f:
    meta = json.load(f)
  network = keras.saving.load_model(path, compile=False)
  return Classifier(network, float(meta.get("test_accuracy", float("nan"))), path=path)


def judge_for(
  folder: str,
  domain: str,
  images,
  labels,
  n_classes: int,
  test_images,
  test_labels,
  seed: int = 0,
  epochs: int | None = None,
  log=print,
) -> Classifier:
  """The cached classifier of one domain's training images, trained (and cached) if missing.

  Args:
    folder: where judges are kept (glow-eval: `<the problem's data>/judges`).
    domain: a name for the file, e.g. "A" or "B".
    images, labels: the domain's training images (uint8 [N, H, W, C]) and int labels.
    n_classes: K.
    test_images, test_labels: its test images, for the reported accuracy.
    seed: the training seed.
    epochs: passes over the images when a judge is trained (None: `train_classifier`'s rule);
      a cached judge is taken whatever its epochs were.
    log: called with one line when a judge is trained.
  """
  digest = data_digest(images, labels)
  path = os.path.join(folder, f"judge_{domain}_{digest}.keras")
  if os.path.exists(path) and os.path.exists(_sidecar(path)):
    return load(path)
  log(f"training the judge of domain {domain} on {len(images)} images ({n_classes} classes)")
  judge = train_classifier(
    images, labels, n_classes, test_images, test_labels, epochs=epochs, seed=seed
  )
  try:
    for stale in glob.glob(os.path.join(folder, f"judge_{domain}_*")):
      os.remove(stale)  # judges of data that changed
    save(judge, path, {"domain": domain, "n_train": len(images), "n_classes": n_classes})
  except OSError as e:  # a read-only data folder: the judge is used without a cache
    log(f"judge of domain {domain} not cached ({e})")
  return judge


class FeatureNet:
  """A user's feature network on disk (a `.keras` / `.h5` file or a SavedModel folder).

  Images are resized (bilinear) to the network's input size when it declares one, grey images
  get three channels when it takes three, and values are scaled to [-1, 1] (what Inception-v3
  and most Keras applications take). Outputs of rank > 2 are averaged over their spatial axes.
  With Inception-v3's pool layer (2048 features) the Frechet distance is the standard FID.
  """

  def __init__(self, path: str):
    if not os.path.exists(path):
      raise FileNotFoundError(f"--feature_model={path}: no such file or folder")
    self.path = path
    self.name = f"feature model {os.path.basename(os.path.normpath(path))}"
    if os.path.isdir(path):
      loaded = tf.saved_model.load(path)
      fn = loaded.signatures.get("serving_default") if hasattr(loaded, "signatures") else None
      spec = fn.structured_input_signature[1] if fn is not None else {}
      if fn is None or len(spec) != 1:
        raise ValueError(
          f"--feature_model={path}: a SavedModel needs a serving_default signature of one input"
        )
      ((self._input_name, input_spec),) = spec.items()
      self._shape = tuple(input_spec.shape[1:])
      self._fn = lambda x: next(iter(fn(**{self._input_name: x}).values()))
    else:
      try:
        model = keras.saving.load_model(path, compile=False)
      except (ValueError, OSError) as e:
        raise ValueError(f"--feature_model={path}: not a Keras model ({e})") from None
      self._shape = tuple(model.inputs[0].shape[1:])
      self._fn = lambda x: model(x, training=False)

  def _prepare(self, images) -> tf.Tensor:
    x = tf.constant(np.asarray(images), tf.float32) / 127.5 - 1.0
    h, w, c = (list(self._shape) + [None, None, None])[:3]
    if h and w and (x.shape[1], x.shape[2]) != (h, w):
      x = tf.image.resize(x, (h, w), method="bilinear")
    if c and x.shape[-1] != c:
      if x.shape[-1] == 1:
        x = tf.repeat(x, c, axis=-1)
      else:
        raise ValueError(f"{self.name}: takes {c} channels, images have {x.shape[-1]}")
    return x

  def features(self, images) -> np.ndarray:
    def run(batch):
      out = np.asarray(self._fn(self._prepare(batch)))
      return (
        out.reshape(len(out), -1) if out.ndim == 2 else out.mean(axis=tuple(range(1, out.ndim - 1)))
      )

    return _batched(run, images, batch_size=64).astype(np.float64)

  def info(self) -> dict:
    return {"kind": "feature_model", "path": os.path.abspath(self.path)}
