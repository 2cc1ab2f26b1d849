"""Fréchet distance against closed forms and an independent symmetric-root formula."""

from __future__ import annotations

import numpy as np
import pytest

from impl.evaluate import frechet_distance, gaussian_stats
from testing.assertions import assert_close
from testing.tolerances import Evaluate, tolerance

TOL = tolerance(Evaluate.FRECHET_DISTANCE)


def _random_covariance(rng: np.random.Generator, d: int) -> np.ndarray:
    """Q diag(λ) Qᵀ with λ in [0.1, 100]: entries <= 1e2, condition number <= 1e3."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    cov: np.ndarray = (q * rng.uniform(0.1, 100.0, size=d)) @ q.T
    return cov


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    root: np.ndarray = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    return root


@pytest.mark.parametrize(("seed", "d"), [(0, 1), (1, 4), (2, 16)])
def test_diagonal_gaussians_closed_form(seed: int, d: int) -> None:
    """For diagonal Σ the distance is ‖μ1 − μ2‖² + Σ_i (√a_i − √b_i)²."""
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.uniform(-3, 3, size=d), rng.uniform(-3, 3, size=d)
    a, b = rng.uniform(0.1, 10.0, size=d), rng.uniform(0.1, 10.0, size=d)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    actual = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert_close(actual, expected, tol=TOL)


@pytest.mark.parametrize(("seed", "d"), [(3, 2), (4, 8), (5, 16)])
def test_full_covariances_match_the_symmetric_root_formula(seed: int, d: int) -> None:
    """tr (Σ1 Σ2)^½ = tr (Σ1^½ Σ2 Σ1^½)^½ (similar matrices), computed here by eigendecompositions."""
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_covariance(rng, d), _random_covariance(rng, d)
    r1 = _psd_sqrt(s1)
    trace_root = float(np.trace(_psd_sqrt(r1 @ s2 @ r1)))
    expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_root)
    actual = frechet_distance(mu1, s1, mu2, s2)
    assert_close(actual, expected, tol=TOL)


def test_identical_gaussians_give_zero_and_never_negative() -> None:
    rng = np.random.default_rng(6)
    s = _random_covariance(rng, 8)
    mu = rng.normal(size=8)
    d = frechet_distance(mu, s, mu, s)
    assert 0.0 <= d <= TOL.atol


def test_singular_covariances() -> None:
    """Σ1 = 0: the root of 0·Σ2 is 0, so d = ‖Δμ‖² + tr Σ2 (no ridge needed)."""
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    s2 = np.diag([1.0, 4.0, 0.0])
    expected = 5.0 + 5.0
    actual = frechet_distance(mu1, np.zeros((3, 3)), mu2, s2)
    assert_close(actual, expected, tol=TOL)


def test_non_covariance_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="sigma1 must be positive semi-definite"):
        frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="sigma2 must be positive semi-definite"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="sigma1 must be a symmetric"):
        frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="sigma1"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="same dimension"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_gaussian_stats_by_hand() -> None:
    mu, sigma = gaussian_stats(np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]]))
    np.testing.assert_array_equal(mu, [1.0, 1.0])
    # deviations ±1 in each coordinate, uncorrelated: variance 4/3 with ddof = 1
    np.testing.assert_allclose(sigma, [[4 / 3, 0.0], [0.0, 4 / 3]], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="n >= 2"):
        gaussian_stats(np.zeros((1, 3)))
