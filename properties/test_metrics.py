"""impl.evaluate's feature metrics ≡ reference.metrics [S32]–[S39], over Hypothesis-drawn feature arrays.

Cases carry a seed, a shape and a scale; the arrays are expanded with a NumPy generator (cheap shrinking,
reproducible failures).  The lead folds these into catalogue entries at merge; the tolerances below move
into ``properties/tolerances.py`` then.

The tolerances and their error budgets are the ``METRIC_TOLERANCES`` table below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import reference.metrics as ref
from impl.evaluate import (
    frechet_distance,
    gaussian_stats,
    inception_score,
    kernel_inception_distance,
    kid_subset_indices,
    knn_squared_radii,
    precision_recall,
)
from properties.tolerances import Tolerance

# tier "float64", operation -> Tolerance: to be moved into properties/tolerances.py at merge.
METRIC_TOLERANCES: dict[str, Tolerance] = {
    "feature_statistics": Tolerance(
        rtol=1e-12,
        atol=1e-12,
        reason="mean and covariance of n <= 40 rows of scale s (atol is scaled by s, s²): both sum <= 40 "
        "terms of size <= (3s)² in another order: <= 40·eps·9s² ~ 8e-14·s²; a 10x margin",
    ),
    "frechet_distance": Tolerance(
        rtol=1e-9,
        atol=1e-9,
        reason="two symmetric eigendecompositions in both (LAPACK vs LAPACK on products blocked "
        "differently); d <= 8 and n >= 3d rows keep cond(Σ) <= ~1e3; eigenvalue errors <= d·eps·‖M‖ ~ "
        "2e-15·‖M‖, the root amplifies by <= 1/(2√λ_min) ~ 1e2: ~1e-12 relative (atol scaled by s²); "
        "1e3 margin",
    ),
    "inception_score": Tolerance(
        rtol=1e-12,
        atol=1e-12,
        reason="exp of a mean of K <= 20-term sums of p·log p, <= 60 rows: <= 60·eps relative before exp, "
        "which keeps relative error: ~1e-14.  The std over <= 10 splits subtracts near-equal numbers, so it "
        "gets atol 1e-12·IS in addition",
    ),
    "precision_recall": Tolerance(
        rtol=0.0,
        atol=0.0,
        reason="ball membership is a comparison; the impl's ‖a‖²+‖b‖²−2a·b squared distances differ from "
        "explicit differences by <= ~4·d·eps·(‖a‖²+‖b‖²), so cases with a pair within 1e-9 relative of its "
        "ball's radius are discarded with assume (a tie, not a disagreement); the counts must then agree",
    ),
    "knn_squared_radii": Tolerance(
        rtol=0.0,
        atol=1e-12,
        reason="squared radii by the expansion vs squared explicit distances: <= 4·d·eps·max‖f‖² ~ "
        "7e-15·max‖f‖² for d <= 8 (atol scaled by max‖f‖²); a 100x margin",
    ),
    "kernel_inception_distance": Tolerance(
        rtol=1e-10,
        atol=1e-10,
        reason="kernel values (x·y/d+1)³ of scale k̄ = max|k| (atol scaled by k̄); the unbiased MMD² is a "
        "difference of three means of m² <= 400 terms summed in another order: <= 400·eps·k̄ ~ 1e-13·k̄; "
        "1e3 margin",
    ),
}
STATS = METRIC_TOLERANCES["feature_statistics"]
FRECHET = METRIC_TOLERANCES["frechet_distance"]
IS = METRIC_TOLERANCES["inception_score"]
RADII = METRIC_TOLERANCES["knn_squared_radii"]
KID = METRIC_TOLERANCES["kernel_inception_distance"]
RADIUS_TIE = 1e-9

SETTINGS = settings(max_examples=40, deadline=None)


@dataclass(frozen=True)
class FeatureCase:
    seed: int
    n_real: int
    n_fake: int
    dim: int
    scale: float
    shift: float

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        spread = rng.uniform(0.3, 3.0, size=self.dim)
        real = rng.normal(size=(self.n_real, self.dim)) * spread * self.scale
        fake = (rng.normal(size=(self.n_fake, self.dim)) * spread + self.shift) * self.scale
        return real, fake


@st.composite
def feature_cases(draw: st.DrawFn, min_rows: int = 4, max_rows: int = 40, max_dim: int = 8) -> FeatureCase:
    dim = draw(st.integers(1, max_dim))
    lo = max(min_rows, 3 * dim)
    return FeatureCase(
        seed=draw(st.integers(0, 2**32 - 1)),
        n_real=draw(st.integers(lo, max(lo, max_rows))),
        n_fake=draw(st.integers(lo, max(lo, max_rows))),
        dim=dim,
        scale=draw(st.sampled_from([1e-3, 1.0, 10.0, 1e3])),
        shift=draw(st.sampled_from([0.0, 0.5, 3.0])),
    )


@SETTINGS
@given(feature_cases())
def test_feature_statistics(case: FeatureCase) -> None:
    real, _ = case.arrays()
    mu, sigma = gaussian_stats(real)
    mu_ref, sigma_ref = ref.feature_statistics(real)
    s2 = case.scale**2
    np.testing.assert_allclose(mu, mu_ref, rtol=STATS.rtol, atol=STATS.atol * case.scale)
    np.testing.assert_allclose(sigma, sigma_ref, rtol=STATS.rtol, atol=STATS.atol * s2)


@SETTINGS
@given(feature_cases())
def test_frechet_distance(case: FeatureCase) -> None:
    real, fake = case.arrays()
    stats1, stats2 = ref.feature_statistics(real), ref.feature_statistics(fake)
    expected = ref.frechet_distance(*stats1, *stats2)
    actual = frechet_distance(*stats1, *stats2)
    assert actual == pytest.approx(max(expected, 0.0), rel=FRECHET.rtol, abs=FRECHET.atol * case.scale**2)


@st.composite
def probability_cases(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    splits = draw(st.integers(1, 10))
    n = draw(st.integers(splits, 60))
    k = draw(st.integers(2, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.normal(size=(n, k)) * draw(st.sampled_from([0.1, 1.0, 5.0, 30.0]))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    if draw(st.booleans()):  # exact zeros: 0 log 0 = 0 in both
        probs[:, 0] = 0.0
    probs /= probs.sum(axis=1, keepdims=True)
    return probs, splits


@SETTINGS
@given(probability_cases())
def test_inception_score(case: tuple[np.ndarray, int]) -> None:
    probs, splits = case
    mean, std = inception_score(probs, splits=splits)
    mean_ref, std_ref = ref.inception_score(probs, splits=splits)
    assert mean == pytest.approx(mean_ref, rel=IS.rtol)
    assert std == pytest.approx(std_ref, rel=IS.rtol, abs=IS.atol * mean_ref)


def _min_relative_margin(manifold: np.ndarray, queries: np.ndarray, k: int) -> float:
    radii = ref.knn_radii(manifold, k)
    distances = ref.pairwise_distances(queries, manifold)
    scale = np.maximum(radii[None, :], 1e-300)
    return float(np.min(np.abs(distances - radii[None, :]) / scale))


@SETTINGS
@given(feature_cases(), st.integers(1, 3), st.booleans())
def test_precision_recall(case: FeatureCase, k: int, duplicate: bool) -> None:
    real, fake = case.arrays()
    if duplicate:  # shared points: distance 0, inside every ball of positive radius
        fake[: min(3, len(fake))] = real[: min(3, len(fake))]
    assume(min(case.n_real, case.n_fake) >= k + 1)
    assume(_min_relative_margin(real, fake, k) > RADIUS_TIE or duplicate)
    assume(_min_relative_margin(fake, real, k) > RADIUS_TIE or duplicate)
    assert precision_recall(real, fake, k=k) == ref.precision_recall(real, fake, k=k)


@SETTINGS
@given(feature_cases(), st.integers(1, 3))
def test_knn_radii(case: FeatureCase, k: int) -> None:
    real, _ = case.arrays()
    expected = ref.knn_radii(real, k)
    bound = RADII.atol * float(np.max((real**2).sum(axis=1)))
    np.testing.assert_allclose(knn_squared_radii(real, k), expected**2, rtol=0, atol=bound)


@SETTINGS
@given(feature_cases(min_rows=4, max_rows=20), st.integers(1, 5), st.integers(0, 1000))
def test_kernel_inception_distance(case: FeatureCase, subsets: int, seed: int) -> None:
    real, fake = case.arrays()
    size = min(case.n_real, case.n_fake) // 2 + 1
    mean, std = kernel_inception_distance(real, fake, subsets=subsets, subset_size=size, seed=seed)
    real_idx, fake_idx = kid_subset_indices(case.n_real, case.n_fake, subsets, size, seed)
    mean_ref, std_ref = ref.kernel_inception_distance(real, fake, real_idx, fake_idx)
    k_scale = float(np.max(np.abs(ref.polynomial_kernel(np.vstack([real, fake]), np.vstack([real, fake])))))
    assert mean == pytest.approx(mean_ref, rel=KID.rtol, abs=KID.atol * k_scale)
    assert std == pytest.approx(std_ref, rel=KID.rtol, abs=KID.atol * k_scale)


def test_kid_subsets_are_drawn_without_replacement() -> None:
    real_idx, fake_idx = kid_subset_indices(50, 30, subsets=20, subset_size=30, seed=1)
    assert real_idx.shape == fake_idx.shape == (20, 30)
    for row in real_idx:
        assert len(set(row.tolist())) == 30 and row.max() < 50
    for row in fake_idx:  # subset_size == num_fake: each row is a permutation of all fake rows
        assert sorted(row.tolist()) == list(range(30))
