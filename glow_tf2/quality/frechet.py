"""The Frechet distance between two sets of feature vectors, each summarised as a Gaussian.

For features f with mean mu and covariance S (ddof = 1), the squared 2-Wasserstein distance
between N(mu_1, S_1) and N(mu_2, S_2) is (Dowson & Landau, 1982)

    d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1^(1/2) S_2 S_1^(1/2))^(1/2)).

With Inception-v3 features this is FID (Heusel et al., 2017); with a domain classifier's
features it is the same distance in that classifier's space. The trace term is computed from
the eigenvalues of the symmetric positive semi-definite M = S_1^(1/2) S_2 S_1^(1/2), which have
the same square roots' sum as the usual `sqrtm(S_1 S_2)` (the two matrices are similar) but need
only symmetric eigendecompositions: no complex parts to drop, no `sqrtm` iterations to diverge on
a singular covariance (a few hundred samples of 128 features often give one).
"""

from typing import NamedTuple

import numpy as np


class Gaussian(NamedTuple):
  """Mean `[F]` and covariance `[F, F]` (ddof = 1) of a set of feature vectors, float64."""

  mean: np.ndarray
  cov: np.ndarray
  count: int


def fit_gaussian(features) -> Gaussian:
  """The mean and covariance of features `[N, F]`, N >= 2."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or len(f) < 2:
    raise ValueError(f"fit_gaussian: features must be [N >= 2, F], got shape {f.shape}")
  if not np.all(np.isfinite(f)):
    raise ValueError("fit_gaussian: features hold NaN or infinity")
  return Gaussian(f.mean(axis=0), np.cov(f, rowvar=False, ddof=1).reshape(f.shape[1], -1), len(f))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
  """The symmetric square root of a symmetric PSD matrix (negative rounding clipped to 0)."""
  values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
  return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def distance(p: Gaussian, q: Gaussian) -> float:
  """The Frechet distance d^2 of the module docstring (>= 0, 0 for equal Gaussians)."""
  if p.mean.shape != q.mean.shape:
    raise ValueError(f"frechet distance: {p.mean.shape[0]} and {q.mean.shape[0]} features differ")
  root = _psd_sqrt(p.cov)
  middle = root @ q.cov @ root
  trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum()
  d2 = np.sum(np.square(p.mean - q.mean)) + np.trace(p.cov) + np.trace(q.cov) - 2.0 * trace_sqrt
  return float(max(d2, 0.0))


def feature_distance(features_1, features_2) -> float:
  """The Frechet distance between two sets of features `[N1, F]` and `[N2, F]`."""
  return distance(fit_gaussian(features_1), fit_gaussian(features_2))
