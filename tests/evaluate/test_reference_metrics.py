"""The oracle ``reference/metrics.py`` [S32]–[S39] against independent mathematics and hand values.

Tolerances: scipy's sqrtm on d <= 8, entries <= 1e2, cond <= 1e3 has backward error ~ d·cond·eps·‖A‖ ~ 2e-10
on the trace of the root (the Evaluate.FRECHET_DISTANCE entry of testing/tolerances, 1e-8); hand values are
exact decimals computed in a handful of float64 operations (Evaluate.METRIC_HAND_VALUES).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

import reference.metrics as ref
from testing.assertions import assert_close
from testing.tolerances import Evaluate, tolerance

TOL = tolerance(Evaluate.FRECHET_DISTANCE)
HAND = tolerance(Evaluate.METRIC_HAND_VALUES)


def test_statistics_match_numpy_cov() -> None:
    f = np.random.default_rng(0).normal(size=(30, 4))
    mu, sigma = ref.feature_statistics(f)
    assert_close(mu, f.mean(axis=0), tol=HAND)
    assert_close(sigma, np.cov(f, rowvar=False), tol=HAND)


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
    assert_close(ref.frechet_distance(mu1, s1, mu2, s2), expected, tol=TOL)


def test_inception_score_hand_values() -> None:
    assert_close(
        np.array(ref.inception_score(np.eye(2)[[0, 1, 0, 1]], splits=1)), np.array((2.0, 0.0)), tol=HAND
    )
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])
    assert_close(np.array(ref.inception_score(probs, splits=2)), np.array((1.5, 0.5)), tol=HAND)
    with pytest.raises(ValueError, match="probs: expected at least splits"):
        ref.inception_score(probs, splits=5)


def test_knn_radii_and_coverage_on_a_line() -> None:
    """Points 0, 1, 3, 7 on a line: k = 1 radii 1, 1, 2, 4; k = 2 radii 3, 2, 3, 6."""
    line = np.array([[0.0], [1.0], [3.0], [7.0]])
    assert_close(ref.knn_radii(line, 1), [1.0, 1.0, 2.0, 4.0], tol=HAND)
    assert_close(ref.knn_radii(line, 2), [3.0, 2.0, 3.0, 6.0], tol=HAND)
    # queries 2 (inside the ball of 1 and of 3), 12 (outside all: 7 + 4 = 11), -1 (inside the ball of 0)
    assert_close(ref.manifold_coverage(line, np.array([[2.0], [12.0], [-1.0]]), k=1), 2 / 3, tol=HAND)
    assert ref.precision_recall(line, line, k=1) == (1.0, 1.0)


def test_mmd_hand_value() -> None:
    """d = 1, x = (0, 1), y = (0, −1), k(a, b) = (ab + 1)³: k_xx off-diagonal = 1, k_yy off-diagonal = 1,
    k_xy = (1, 1; 1, 0), so MMD²_u = 2/2 + 2/2 − 2·3/4 = 0.5."""
    x, y = np.array([[0.0], [1.0]]), np.array([[0.0], [-1.0]])
    assert_close(ref.mmd2_unbiased(x, y), 0.5, tol=HAND)
    mean, std = ref.kernel_inception_distance(x, y, np.array([[0, 1], [1, 0]]), np.array([[0, 1], [0, 1]]))
    assert_close(np.array((mean, std)), np.array((0.5, 0.0)), tol=HAND)
