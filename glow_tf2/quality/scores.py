"""Scores of generated images under a judge (`quality.judge`): do they look like the data?

For N images x_i with judge probabilities p_i `[K]` and features f_i:

  confident      (1/N) #{i : max_k p_ik >= 0.9}: the fraction the judge is sure of. Real test
                 images of a well-trained judge score near its accuracy; noise scores low.
  class_entropy  H(c) = -sum_k c_k log c_k (nats), c_k = (1/N) #{i : argmax p_i = k}: the spread
                 of the predicted classes. log K when every class is equally common, 0 when all
                 samples are one class (the mode collapse a confident fraction alone misses).
                 `class_entropy_ratio` = H(c) / log K.
  frechet        the Frechet distance (`quality.frechet`) between the features of the images and
                 of the real test images. Its scale is the judge's; its floor is `floor`: the
                 same distance between two halves of the real test images (even and odd
                 positions), what finite samples of the data itself score.
  saturated      the fraction of images with more than 97% of their pixels at 0 or 255: the
                 black or white squares an overflowing decoder draws (needs no judge; compare
                 with the real images' own figure, which nearly binary data such as edge maps
                 can make high).
  label_agreement  for translations: the fraction whose predicted class (by the target domain's
                 judge) equals the label of their source image.
"""

import math

import numpy as np

from glow_tf2.quality import frechet

CONFIDENCE = 0.9
SATURATED_SHARE = 0.97


def class_entropy(probabilities) -> float:
  """H of the histogram of predicted classes, in nats."""
  p = np.asarray(probabilities)
  counts = np.bincount(np.argmax(p, axis=1), minlength=p.shape[1]).astype(np.float64)
  c = counts[counts > 0] / counts.sum()
  return float(-(c * np.log(c)).sum())


def confident_fraction(probabilities, threshold: float = CONFIDENCE) -> float:
  """The fraction of rows whose largest probability is at least `threshold`."""
  return float(np.mean(np.max(np.asarray(probabilities), axis=1) >= threshold))


def saturated_fraction(images, share: float = SATURATED_SHARE) -> float:
  """The fraction of uint8 images `[N, ...]` with more than `share` of their values at 0 or 255."""
  x = np.asarray(images).reshape(len(images), -1)
  extreme = np.mean((x == 0) | (x == 255), axis=1)
  return float(np.mean(extreme > share))


def label_agreement(probabilities, labels) -> float:
  """The fraction of rows whose most probable class is their label."""
  labels = np.asarray(labels).reshape(-1)
  p = np.asarray(probabilities)
  if len(p) != len(labels):
    raise ValueError(f"label_agreement: {len(p)} predictions and {len(labels)} labels")
  return float(np.mean(np.argmax(p, axis=1) == labels))


def floor(real_features) -> float:
  """The Frechet distance between the even and the odd rows of real features `[N >= 4, F]`."""
  f = np.asarray(real_features)
  if len(f) < 4:
    raise ValueError(f"frechet floor: needs at least 4 real images, got {len(f)}")
  return frechet.feature_distance(f[0::2], f[1::2])


def judge_images(judge, images, reference: frechet.Gaussian) -> dict[str, float]:
  """The scores of the module docstring for uint8 images `[N, H, W, C]`.

  A classifier gives all four; a feature network (no classes) gives `frechet` alone.
  `reference` is the Gaussian of the real test images' features under the same judge.
  """
  if hasattr(judge, "features_and_probabilities"):
    features, probs = judge.features_and_probabilities(images)
    k = probs.shape[1]
    entropy = class_entropy(probs)
    scores = {
      "confident": confident_fraction(probs),
      "class_entropy": entropy,
      "class_entropy_ratio": entropy / math.log(k),
    }
  else:
    features, scores = judge.features(images), {}
  scores["frechet"] = frechet.distance(frechet.fit_gaussian(features), reference)
  scores["saturated"] = saturated_fraction(images)
  scores["n"] = int(len(images))
  return scores


def real_reference(judge, test_images) -> tuple[frechet.Gaussian, dict[str, float]]:
  """The Gaussian of the real test images' features and their own scores (`floor` included).

  The real images' `frechet` is against themselves (0 up to rounding) and is replaced by the
  floor, which is what a set of samples can hope to reach.
  """
  features = judge.features(test_images)
  reference = frechet.fit_gaussian(features)
  scores = judge_images(judge, test_images, reference)
  scores["frechet"] = floor(features)
  return reference, scores
