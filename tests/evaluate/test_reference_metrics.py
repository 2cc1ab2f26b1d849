"""The oracle ``reference/metrics.py`` [S32]–[S39] against independent mathematics and hand values.

Tolerances: scipy's sqrtm on d <= 8, entries <= 1e2, cond <= 1e3 has backward error ~ d·cond·eps·‖A‖ ~ 2e-10
on the trace of the root (the Evaluate.FRECHET_DISTANCE entry of testing/tolerances, 1e-8); hand values are
exact decimals computed in a handful of float64 operations (1e-12).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from testing.tolerances import Evaluate, tolerance

import reference.metrics as ref

TOL = tolerance(Evaluate.FRECHET_DISTANCE)
HAND = 1e-12


def test_statistics_match_numpy_cov() -> None:
    f = np.random.default_rng(0).normal(size=(30, 4))
    mu, sigma = ref.feature_statistics(f)
    np.testing.assert_allclose(mu, f.mean(axis=0), rtol=HAND, atol=HAND)
    np.testing.assert_allclose(sigma, np.cov(f, rowvar=False), rtol=HAND, atol=HAND)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_frechet_matches_scipy_sqrtm(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = 8
    q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    s1 = (q1 * rng.uniform(0.1, 100.0, d)) @ q1.T
    s2 = (q2 * rng.uniform(0.1, 100.0, d)) @ q2.T
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    trace_root = float(np.trace(scipy.linalg.sqrtm(s1 @ s2)).real)
    expected = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * trace_root)
    assert ref.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=TOL.rtol, abs=TOL.atol)


def test_inception_score_hand_values() -> None:
    assert ref.inception_score(np.eye(2)[[0, 1, 0, 1]], splits=1) == pytest.approx((2.0, 0.0), abs=HAND)
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])
    assert ref.inception_score(probs, splits=2) == pytest.approx((1.5, 0.5), abs=HAND)
    with pytest.raises(ValueError, match="probs: expected at least splits"):
        ref.inception_score(probs, splits=5)


def test_knn_radii_and_coverage_on_a_line() -> None:
    """Points 0, 1, 3, 7 on a line: k = 1 radii 1, 1, 2, 4; k = 2 radii 3, 2, 3, 6."""
    line = np.array([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_allclose(ref.knn_radii(line, 1), [1.0, 1.0, 2.0, 4.0], rtol=0, atol=HAND)
    np.testing.assert_allclose(ref.knn_radii(line, 2), [3.0, 2.0, 3.0, 6.0], rtol=0, atol=HAND)
    # queries 2 (inside the ball of 1 and of 3), 12 (outside all: 7 + 4 = 11), -1 (inside the ball of 0)
    assert ref.manifold_coverage(line, np.array([[2.0], [12.0], [-1.0]]), k=1) == pytest.approx(2 / 3)
    assert ref.precision_recall(line, line, k=1) == (1.0, 1.0)


def test_mmd_hand_value() -> None:
    """d = 1, x = (0, 1), y = (0, −1), k(a, b) = (ab + 1)³: k_xx off-diagonal = 1, k_yy off-diagonal = 1,
    k_xy = (1, 1; 1, 0), so MMD²_u = 2/2 + 2/2 − 2·3/4 = 0.5."""
    x, y = np.array([[0.0], [1.0]]), np.array([[0.0], [-1.0]])
    assert ref.mmd2_unbiased(x, y) == pytest.approx(0.5, abs=HAND)
    mean, std = ref.kernel_inception_distance(x, y, np.array([[0, 1], [1, 0]]), np.array([[0, 1], [0, 1]]))
    assert (mean, std) == pytest.approx((0.5, 0.0), abs=HAND)
