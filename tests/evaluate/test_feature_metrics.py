"""The feature metrics against independent computations and closed forms.

- Fréchet distance: scipy.linalg.sqrtm(Σ1 Σ2) directly (the usual FID code path; the impl uses symmetric
  eigendecompositions), a batch against itself, and Gaussians of known mean and covariance through the
  identity feature map (features built to have exactly that sample mean and covariance).
- Inception Score: its formula on hand-made probabilities.
- Precision/recall: brute-force k-NN with Python loops; identical sets give 1, far-apart sets 0.
- KID: the unbiased MMD² written as explicit double sums over pairs.

Tolerances (error budgets): sqrtm's backward error on d <= 16, entries <= 1e2, cond <= 1e3 is <= d·cond·
eps·‖A‖ ~ 4e-10 on tr(Σ1Σ2)^½ (the Evaluate.FRECHET_DISTANCE entry of testing/tolerances, 1e-8); the loop
versions of IS and KID sum the same <= 400 float64 terms in another order (<= 400·eps relative ~ 1e-13):
Evaluate.METRIC_LOOP_SUM / METRIC_LOOP_STD hold them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from impl.evaluate import (
    frechet_distance,
    gaussian_stats,
    inception_score,
    kernel_inception_distance,
    kid_subset_indices,
    precision_recall,
)
from testing.assertions import assert_close
from testing.tolerances import Evaluate, tolerance

TOL = tolerance(Evaluate.FRECHET_DISTANCE)
LOOP_SUM = tolerance(Evaluate.METRIC_LOOP_SUM)
LOOP_STD = tolerance(Evaluate.METRIC_LOOP_STD)
HAND = tolerance(Evaluate.METRIC_HAND_VALUES)


def _covariance(rng: np.random.Generator, d: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    cov: np.ndarray = (q * rng.uniform(0.1, 100.0, size=d)) @ q.T
    return cov


@pytest.mark.parametrize(("seed", "d"), [(0, 2), (1, 8), (2, 16)])
def test_frechet_matches_scipy_sqrtm(seed: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _covariance(rng, d), _covariance(rng, d)
    root = scipy.linalg.sqrtm(s1 @ s2)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root).real)
    assert_close(frechet_distance(mu1, s1, mu2, s2), expected, tol=TOL)


def test_frechet_of_a_batch_with_itself_is_zero() -> None:
    features = np.random.default_rng(3).normal(size=(200, 16)) * 5.0
    stats = gaussian_stats(features)
    # identical inputs: ‖0‖² + 2 tr Σ − 2 Σ √λ(Σ²) vanishes up to the rounding of √(λ²) = λ: ~d·eps·tr Σ
    assert 0.0 <= frechet_distance(*stats, *stats) <= 1e-10 * float(np.trace(stats[1]))


def _exact_moments(rng: np.random.Generator, n: int, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """n rows whose sample mean is exactly mu and sample covariance (ddof 1) exactly sigma, up to rounding."""
    z = rng.normal(size=(n, mu.shape[0]))
    z -= z.mean(axis=0)
    cov_z = z.T @ z / (n - 1)
    white = z @ np.linalg.inv(np.linalg.cholesky(cov_z)).T
    rows: np.ndarray = mu + white @ np.linalg.cholesky(sigma).T
    return rows


def test_frechet_between_known_gaussians_through_the_identity_feature_map() -> None:
    """Σ1 = diag(a), Σ2 = diag(b): d² = ‖μ1 − μ2‖² + Σ_i (√a_i − √b_i)², from features with those moments."""
    rng = np.random.default_rng(4)
    d = 6
    mu1, mu2 = rng.uniform(-2, 2, size=d), rng.uniform(-2, 2, size=d)
    a, b = rng.uniform(0.5, 4.0, size=d), rng.uniform(0.5, 4.0, size=d)
    f1 = _exact_moments(rng, 500, mu1, np.diag(a))
    f2 = _exact_moments(rng, 300, mu2, np.diag(b))
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    actual = frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))
    assert_close(actual, expected, tol=TOL)


def test_inception_score_by_its_formula() -> None:
    # one-hot over two classes, balanced: p(y) = (1/2, 1/2), each KL = ln 2, IS = 2 in the one split
    assert_close(np.array(inception_score(np.eye(2)[[0, 1, 0, 1]], splits=1)), np.array((2.0, 0.0)), tol=HAND)
    # identical rows: KL = 0, IS = 1
    assert_close(np.array(inception_score(np.full((6, 3), 1 / 3), splits=3)), np.array((1.0, 0.0)), tol=HAND)
    # two splits: [one-hot a, one-hot b] (IS 2) and [soft, soft] (IS 1)
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])
    mean, std = inception_score(probs, splits=2)
    assert_close(np.array((mean, std)), np.array((1.5, 0.5)), tol=HAND)
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(7), size=30)
    per_split = []
    for part in (p[0:10], p[10:20], p[20:30]):
        marginal = part.mean(axis=0)
        kl = [sum(row[k] * math.log(row[k] / marginal[k]) for k in range(7)) for row in part]
        per_split.append(math.exp(sum(kl) / len(kl)))
    mean, std = inception_score(p, splits=3)
    assert_close(mean, float(np.mean(per_split)), tol=LOOP_SUM)
    assert_close(std, float(np.std(per_split)), tol=LOOP_STD)


def _brute_force_coverage(manifold: np.ndarray, queries: np.ndarray, k: int) -> float:
    radii = []
    for i, point in enumerate(manifold):
        others = sorted(float(np.linalg.norm(point - q)) for j, q in enumerate(manifold) if j != i)
        radii.append(others[k - 1])
    inside = 0
    for q in queries:
        inside += any(float(np.linalg.norm(q - f)) <= r for f, r in zip(manifold, radii, strict=True))
    return inside / len(queries)


@pytest.mark.parametrize(("seed", "k"), [(6, 1), (7, 3), (8, 5)])
def test_precision_recall_by_brute_force_knn(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(40, 5))
    fake = rng.normal(size=(35, 5)) * 0.8 + 0.7
    expected = (_brute_force_coverage(real, fake, k), _brute_force_coverage(fake, real, k))
    assert precision_recall(real, fake, k=k) == expected
    assert 0.0 < expected[0] < 1.0 and 0.0 < expected[1] < 1.0  # the case exercises both outcomes


def test_precision_recall_closed_forms() -> None:
    rng = np.random.default_rng(9)
    real = rng.normal(size=(30, 4))
    assert precision_recall(real, real.copy(), k=3) == (1.0, 1.0)
    assert precision_recall(real, real + 1e3, k=3) == (0.0, 0.0)
    with pytest.raises(ValueError, match="fake_features must hold at least 4 rows"):
        precision_recall(real, real[:3], k=3)


def _loop_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    m, d = x.shape

    def kernel(a: np.ndarray, b: np.ndarray) -> float:
        return (float(a @ b) / d + 1.0) ** 3

    xx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(kernel(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_by_the_polynomial_kernel_estimator() -> None:
    rng = np.random.default_rng(10)
    real, fake = rng.normal(size=(25, 6)), rng.normal(size=(20, 6)) + 0.5
    mean, std = kernel_inception_distance(real, fake, subsets=4, subset_size=12, seed=3)
    real_idx, fake_idx = kid_subset_indices(25, 20, 4, 12, seed=3)
    values = [_loop_mmd2(real[r], fake[f]) for r, f in zip(real_idx, fake_idx, strict=True)]
    assert_close(mean, float(np.mean(values)), tol=LOOP_SUM)
    assert_close(std, float(np.std(values)), tol=LOOP_STD)
    assert mean > 0.0  # shifted distributions: a clearly positive MMD²


def test_kid_is_unbiased_for_one_distribution() -> None:
    """Same distribution: E[MMD²_u] = 0 over draws of the data, so the mean of 200 independent data sets'
    KIDs lies within 4 standard errors of 0 (a false alarm about once in 16,000 seeds)."""
    rng = np.random.default_rng(11)
    values = []
    for _ in range(200):
        real, fake = rng.normal(size=(40, 4)), rng.normal(size=(40, 4))
        values.append(kernel_inception_distance(real, fake, subsets=1, subset_size=40)[0])
    assert abs(float(np.mean(values))) < 4 * float(np.std(values, ddof=1)) / math.sqrt(200)


def test_kid_refuses_subsets_larger_than_the_sets() -> None:
    real = np.zeros((5, 2))
    with pytest.raises(ValueError, match="subset_size must be <= the smaller set"):
        kernel_inception_distance(real, real, subsets=2, subset_size=6)


def test_kid_subsets_are_drawn_without_replacement() -> None:
    real_idx, fake_idx = kid_subset_indices(50, 30, subsets=20, subset_size=30, seed=1)
    assert real_idx.shape == fake_idx.shape == (20, 30)
    for row in real_idx:
        assert len(set(row.tolist())) == 30 and row.max() < 50
    for row in fake_idx:  # subset_size == num_fake: each row is a permutation of all fake rows
        assert sorted(row.tolist()) == list(range(30))
