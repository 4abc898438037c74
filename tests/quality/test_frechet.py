"""The Frechet distance against an independent computation and its closed forms."""

import numpy as np
import pytest
import scipy.linalg

from glow_tf2.quality import frechet


def _reference(f1, f2):
  """The usual FID formula, with scipy's general matrix square root of S_1 S_2."""
  mu1, mu2 = f1.mean(0), f2.mean(0)
  s1 = np.atleast_2d(np.cov(f1, rowvar=False))
  s2 = np.atleast_2d(np.cov(f2, rowvar=False))
  root = scipy.linalg.sqrtm(s1 @ s2)
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2.0 * np.real(root)))


@pytest.mark.parametrize("features", [1, 3, 16])
def test_matches_scipy_sqrtm(features, rng):
  f1 = rng.normal(size=(200, features)) @ rng.normal(size=(features, features))
  f2 = 0.5 + rng.normal(size=(150, features)) * rng.uniform(0.5, 2.0, features)
  got = frechet.feature_distance(f1, f2)
  assert got == pytest.approx(_reference(f1, f2), rel=1e-7, abs=1e-9)
  assert got > 0.1


def test_one_dimension_closed_form(rng):
  f1 = rng.normal(2.0, 3.0, size=(400, 1))
  f2 = rng.normal(-1.0, 0.5, size=(300, 1))
  m1, m2, s1, s2 = f1.mean(), f2.mean(), f1.std(ddof=1), f2.std(ddof=1)
  assert frechet.feature_distance(f1, f2) == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2)


def test_shift_and_identity(rng):
  f = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
  shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
  assert frechet.feature_distance(f, f) == pytest.approx(0.0, abs=1e-8)
  # Equal covariances: only the means differ, by |shift|^2.
  assert frechet.feature_distance(f, f + shift) == pytest.approx(np.sum(shift**2), rel=1e-8)
  # Symmetric in its arguments.
  g = rng.normal(size=(100, 5))
  assert frechet.feature_distance(f, g) == pytest.approx(frechet.feature_distance(g, f), rel=1e-8)


def test_singular_covariance_is_finite(rng):
  # Fewer samples than features: both covariances are singular; sqrtm-based code can return
  # complex or NaN values here, the eigenvalue form stays real and >= 0.
  f1, f2 = rng.normal(size=(10, 40)), rng.normal(size=(12, 40)) + 1.0
  d = frechet.feature_distance(f1, f2)
  assert np.isfinite(d) and d > 30.0  # the means alone are about 40 apart


def test_bad_input():
  with pytest.raises(ValueError, match="N >= 2"):
    frechet.fit_gaussian(np.zeros((1, 3)))
  with pytest.raises(ValueError, match="N >= 2"):
    frechet.fit_gaussian(np.zeros(5))
  with pytest.raises(ValueError, match="NaN"):
    frechet.fit_gaussian(np.array([[0.0, 1.0], [np.nan, 2.0]]))
  with pytest.raises(ValueError, match="differ"):
    frechet.feature_distance(np.zeros((3, 2)), np.zeros((3, 4)))
