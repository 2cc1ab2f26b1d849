"""Catalogue entries of `reference.metrics` [S32]–[S39]: impl.evaluate's pure feature metrics.

Both sides are float64 NumPy on the host (``dtypes=FLOAT64_ONLY``, ``devices=("cpu",)``).  A drawn case
carries a seed, a shape and a scale; the arrays are expanded from it with a NumPy generator (cheap
shrinking, reproducible failures).  The reference side passes every input array through ``perturb``,
so `properties.compare` measures how input rounding is amplified; each entry's ``magnitude`` adds the
size of the terms its sums and products round against (what relative input perturbations cannot see:
cancellation between terms), so S in the tolerances of `testing/tolerances/impl_vs_reference.py` is
at least that term size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

import impl.evaluate as ev
from properties.catalogue.entry import FLOAT64_ONLY, Entry, FloatArray, Outputs
from properties.compare import Perturb
from reference.metrics import (
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    knn_radii,
    pairwise_distances,
    polynomial_kernel,
    precision_recall,
)
from testing.tolerances import ReferenceOp

HOST = ("cpu",)
# Precision/recall cases with a pair this close (relative) to its ball's radius are ties, not tests.
RADIUS_TIE = 1e-9


@dataclass(frozen=True)
class FeatureCase:
    """Real and fake (n, d) feature arrays: per-column spreads in [0.3, 3], fake shifted, all scaled."""

    seed: int
    n_real: int
    n_fake: int
    dim: int
    scale: float
    shift: float

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        rng = np.random.default_rng(self.seed)
        spread = rng.uniform(0.3, 3.0, size=self.dim)
        real = rng.normal(size=(self.n_real, self.dim)) * spread * self.scale
        fake = (rng.normal(size=(self.n_fake, self.dim)) * spread + self.shift) * self.scale
        return real, fake


@st.composite
def feature_cases(draw: st.DrawFn, min_rows: int = 4, max_rows: int = 40, max_dim: int = 8) -> FeatureCase:
    """d <= 8 columns and n >= 3d rows (so the covariances stay well conditioned, cond <= ~1e3)."""
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


def _scalars(**values: float) -> Outputs:
    return {key: np.asarray(value, dtype=np.float64) for key, value in values.items()}


# ---------------------------------------------------------------- [S32] feature statistics
def _stats_impl(case: FeatureCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    mu, sigma = ev.gaussian_stats(case.arrays()[0])
    return {"mu": mu, "sigma": sigma}


def _stats_ref(case: FeatureCase, dtype_name: str, perturb: Perturb) -> Outputs:
    mu, sigma = feature_statistics(perturb(case.arrays()[0], "features"))
    return {"mu": mu, "sigma": sigma}


def _stats_magnitude(case: FeatureCase, dtype_name: str) -> Outputs:
    """mu: (1/n) Σ_i |f_ij|; sigma: (1/(n−1)) Σ_i (|f_ij| + |μ_j|)(|f_ik| + |μ_k|) (the summed terms)."""
    f = case.arrays()[0]
    mu = f.mean(axis=0)
    bound = np.abs(f) + np.abs(mu)
    return {"mu": np.abs(f).mean(axis=0), "sigma": bound.T @ bound / (f.shape[0] - 1)}


# ---------------------------------------------------------------- [S33] Fréchet distance
def _frechet_inputs(case: FeatureCase) -> dict[str, FloatArray]:
    real, fake = case.arrays()
    (mu1, sigma1), (mu2, sigma2) = feature_statistics(real), feature_statistics(fake)
    return {"mu1": mu1, "sigma1": sigma1, "mu2": mu2, "sigma2": sigma2}


def _frechet_impl(case: FeatureCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    return _scalars(d2=ev.frechet_distance(**_frechet_inputs(case)))


def _frechet_ref(case: FeatureCase, dtype_name: str, perturb: Perturb) -> Outputs:
    values = {name: perturb(array, name) for name, array in _frechet_inputs(case).items()}
    # d² >= 0 in exact arithmetic; the impl returns a rounding-level negative result as 0 (its documented
    # convention), so the oracle's value is compared after the same clamp.
    return _scalars(d2=max(frechet_distance(**values), 0.0))


def _frechet_magnitude(case: FeatureCase, dtype_name: str) -> Outputs:
    """tr Σ1 + tr Σ2: the terms that cancel against 2 tr (Σ1^½ Σ2 Σ1^½)^½ when the Gaussians are close."""
    v = _frechet_inputs(case)
    return _scalars(d2=float(np.trace(v["sigma1"]) + np.trace(v["sigma2"])))


# ---------------------------------------------------------------- [S34] Inception Score
@dataclass(frozen=True)
class ProbabilityCase:
    """n rows of softmax(logits) over k classes (logits of a given scale), optionally a zero class."""

    seed: int
    rows: int
    classes: int
    logit_scale: float
    zero_class: bool
    splits: int

    def probs(self) -> FloatArray:
        rng = np.random.default_rng(self.seed)
        logits = rng.normal(size=(self.rows, self.classes)) * self.logit_scale
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        if self.zero_class:  # exact zeros: 0 log 0 = 0 on both sides
            probs[:, 0] = 0.0
        result: FloatArray = probs / probs.sum(axis=1, keepdims=True)
        return result


@st.composite
def probability_cases(draw: st.DrawFn) -> ProbabilityCase:
    splits = draw(st.integers(1, 10))
    rows = draw(st.integers(splits, 60))
    classes = draw(st.integers(2, 20))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0, 30.0]))
    return ProbabilityCase(seed, rows, classes, scale, draw(st.booleans()), splits)


def _is_impl(case: ProbabilityCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    mean, std = ev.inception_score(case.probs(), splits=case.splits)
    return _scalars(mean=mean, std=std)


def _is_ref(case: ProbabilityCase, dtype_name: str, perturb: Perturb) -> Outputs:
    # A relative eps32 perturbation moves a row sum by <= 1.2e-7, inside the oracle's 1e-6 check.
    mean, std = inception_score(perturb(case.probs(), "probs"), splits=case.splits)
    return _scalars(mean=mean, std=std)


def _is_magnitude(case: ProbabilityCase, dtype_name: str) -> Outputs:
    """std: the scores IS_i themselves (the std subtracts near-equal scores of about the mean's size)."""
    mean, _ = inception_score(case.probs(), splits=case.splits)
    return _scalars(std=mean)


# ---------------------------------------------------------------- [S35] k-NN radii
@dataclass(frozen=True)
class RadiiCase:
    features: FeatureCase
    k: int


def _radii_impl(case: RadiiCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    return {"radii2": ev.knn_squared_radii(case.features.arrays()[0], case.k)}


def _radii_ref(case: RadiiCase, dtype_name: str, perturb: Perturb) -> Outputs:
    return {"radii2": knn_radii(perturb(case.features.arrays()[0], "features"), case.k) ** 2}


def _radii_magnitude(case: RadiiCase, dtype_name: str) -> Outputs:
    """4·max_i ‖f_i‖² >= (‖a‖ + ‖b‖)², the size of the terms of the impl's ‖a‖² + ‖b‖² − 2a·b."""
    real = case.features.arrays()[0]
    bound = 4.0 * float(np.max((real**2).sum(axis=1)))
    return {"radii2": np.full(real.shape[0], bound)}


# ---------------------------------------------------------------- [S36] precision and recall
@dataclass(frozen=True)
class CoverageCase:
    """Feature sets, k, and whether the first (up to 3) fake rows are copies of real rows."""

    features: FeatureCase
    k: int
    duplicate: bool

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        real, fake = self.features.arrays()
        if self.duplicate:  # shared points: distance 0, inside every ball of positive radius
            shared = min(3, len(fake))
            fake[:shared] = real[:shared]
        return real, fake


def _min_relative_margin(manifold: FloatArray, queries: FloatArray, k: int) -> float:
    radii = knn_radii(manifold, k)
    distances = pairwise_distances(queries, manifold)
    scale = np.maximum(radii[None, :], 1e-300)
    return float(np.min(np.abs(distances - radii[None, :]) / scale))


@st.composite
def coverage_cases(draw: st.DrawFn) -> CoverageCase:
    """Cases with no query within RADIUS_TIE (relative) of a ball's surface, unless points are shared."""
    case = CoverageCase(draw(feature_cases()), draw(st.integers(1, 3)), draw(st.booleans()))
    real, fake = case.arrays()
    assume(min(len(real), len(fake)) >= case.k + 1)
    assume(case.duplicate or _min_relative_margin(real, fake, case.k) > RADIUS_TIE)
    assume(case.duplicate or _min_relative_margin(fake, real, case.k) > RADIUS_TIE)
    return case


def _coverage_impl(case: CoverageCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    precision, recall = ev.precision_recall(*case.arrays(), k=case.k)
    return _scalars(precision=precision, recall=recall)


def _coverage_ref(case: CoverageCase, dtype_name: str, perturb: Perturb) -> Outputs:
    # The outputs are counts / n: a relative perturbation either leaves every ball membership as it is
    # (sensitivity 0) or flips one (a tie, which the strategy excludes), so a sensitivity means nothing
    # here and the inputs are not passed through `perturb`.  The op's zero tolerance makes the comparison
    # "equal counts" whatever S is.
    precision, recall = precision_recall(*case.arrays(), k=case.k)
    return _scalars(precision=precision, recall=recall)


# ---------------------------------------------------------------- [S37]–[S39] KID
@dataclass(frozen=True)
class KidCase:
    features: FeatureCase
    subsets: int
    seed: int

    @property
    def subset_size(self) -> int:
        return min(self.features.n_real, self.features.n_fake) // 2 + 1


KID_CASES = st.builds(
    KidCase, feature_cases(min_rows=4, max_rows=20), st.integers(1, 5), st.integers(0, 1000)
)


def _kid_impl(case: KidCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    real, fake = case.features.arrays()
    mean, std = ev.kernel_inception_distance(
        real, fake, subsets=case.subsets, subset_size=case.subset_size, seed=case.seed
    )
    return _scalars(mean=mean, std=std)


def _kid_ref(case: KidCase, dtype_name: str, perturb: Perturb) -> Outputs:
    real, fake = case.features.arrays()
    # The subsets are the metric's only randomness; the oracle takes them as input, drawn here as the
    # impl draws them (its draw is checked on its own in tests/evaluate/test_feature_metrics.py).
    f = case.features
    real_idx, fake_idx = ev.kid_subset_indices(f.n_real, f.n_fake, case.subsets, case.subset_size, case.seed)
    mean, std = kernel_inception_distance(
        perturb(real, "real_features"), perturb(fake, "fake_features"), real_idx, fake_idx
    )
    return _scalars(mean=mean, std=std)


def _kid_magnitude(case: KidCase, dtype_name: str) -> Outputs:
    """k̄ = max |k(x, y)| over all rows: bounds every kernel value the MMD² means sum and subtract."""
    both = np.vstack(case.features.arrays())
    k_bar = float(np.max(np.abs(polynomial_kernel(both, both))))
    return _scalars(mean=k_bar, std=k_bar)


ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="feature_statistics",
        impl=ev.gaussian_stats,
        reference=feature_statistics,
        strategy=feature_cases(),
        call_impl=_stats_impl,
        call_reference=_stats_ref,
        op=ReferenceOp.FEATURE_STATISTICS,
        covers=(ev.gaussian_stats,),
        dtypes=FLOAT64_ONLY,
        magnitude=_stats_magnitude,
        devices=HOST,
    ),
    Entry(
        name="frechet_distance",
        impl=ev.frechet_distance,
        reference=frechet_distance,
        strategy=feature_cases(),
        call_impl=_frechet_impl,
        call_reference=_frechet_ref,
        op=ReferenceOp.FRECHET_DISTANCE,
        covers=(ev.frechet_distance,),
        dtypes=FLOAT64_ONLY,
        magnitude=_frechet_magnitude,
        devices=HOST,
    ),
    Entry(
        name="inception_score",
        impl=ev.inception_score,
        reference=inception_score,
        strategy=probability_cases(),
        call_impl=_is_impl,
        call_reference=_is_ref,
        op=ReferenceOp.INCEPTION_SCORE,
        covers=(ev.inception_score,),
        dtypes=FLOAT64_ONLY,
        magnitude=_is_magnitude,
        devices=HOST,
    ),
    Entry(
        name="knn_squared_radii",
        impl=ev.knn_squared_radii,
        reference=knn_radii,
        strategy=st.builds(RadiiCase, feature_cases(), st.integers(1, 3)),
        call_impl=_radii_impl,
        call_reference=_radii_ref,
        op=ReferenceOp.KNN_SQUARED_RADII,
        covers=(ev.knn_squared_radii,),
        dtypes=FLOAT64_ONLY,
        magnitude=_radii_magnitude,
        devices=HOST,
    ),
    Entry(
        name="precision_recall",
        impl=ev.precision_recall,
        reference=precision_recall,
        strategy=coverage_cases(),
        call_impl=_coverage_impl,
        call_reference=_coverage_ref,
        op=ReferenceOp.MANIFOLD_COVERAGE,
        covers=(ev.precision_recall,),
        dtypes=FLOAT64_ONLY,
        devices=HOST,
    ),
    Entry(
        name="kernel_inception_distance",
        impl=ev.kernel_inception_distance,
        reference=kernel_inception_distance,
        strategy=KID_CASES,
        call_impl=_kid_impl,
        call_reference=_kid_ref,
        op=ReferenceOp.KERNEL_INCEPTION_DISTANCE,
        covers=(ev.kernel_inception_distance,),
        dtypes=FLOAT64_ONLY,
        magnitude=_kid_magnitude,
        devices=HOST,
    ),
)
