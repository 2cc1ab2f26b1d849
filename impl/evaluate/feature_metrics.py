"""Inception Score, k-NN precision/recall and KID on feature arrays: pure float64 NumPy ([S34]–[S39]).

The Fréchet distance [S33] is ``impl.evaluate.frechet``.  These functions take NumPy arrays and return
Python floats; they are held to ``reference.metrics`` by the catalogue
(``properties/catalogue/metrics.py``).

- ``inception_score`` splits the rows into ``splits`` consecutive parts ``[⌊i n/s⌋, ⌊(i+1) n/s⌋)``, the
  convention of the original Inception-Score code, and reports the mean and the ddof-0 standard deviation.
- ``precision_recall`` (Kynkäänniemi et al. 2019) uses squared distances ``‖a‖² + ‖b‖² − 2 a·b`` in row
  chunks (``PAIRWISE_CHUNK`` rows at a time, so 50K × 50K never sits in memory at once).  A point counts as
  inside a ball when its squared distance is ``<=`` the squared radius.
- ``kernel_inception_distance`` draws ``subsets`` index rows with ``kid_subset_indices`` (each row without
  replacement, from ``numpy.random.default_rng(seed)``) and averages the unbiased MMD² with the kernel
  ``(x·y/d + 1)³``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "inception_score",
    "kernel_inception_distance",
    "kid_subset_indices",
    "knn_squared_radii",
    "precision_recall",
]

PAIRWISE_CHUNK = 1024
Floats = NDArray[np.float64]


def _rows(x: NDArray[np.floating] | NDArray[np.integer], name: str, min_rows: int) -> Floats:
    f = np.asarray(x, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, d) with d >= 1; got shape {f.shape}")
    if f.shape[0] < min_rows:
        raise ValueError(f"{name} must hold at least {min_rows} rows here; got {f.shape[0]}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{name} must be finite")
    return f


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


def _pair(real: Floats, fake: Floats) -> None:
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real_features and fake_features must have the same width; got {real.shape[1]} and "
            f"{fake.shape[1]}"
        )


def inception_score(probs: NDArray[np.float64], splits: int = 10) -> tuple[float, float]:
    """``exp(E_x KL(p(y|x) ‖ p(y)))`` per split of the rows, as (mean, std) over the splits [S34]."""
    s = _positive_int(splits, "splits")
    p = _rows(probs, "probs", min_rows=s)
    if p.shape[1] < 2:
        raise ValueError(f"probs must have at least 2 classes; got {p.shape[1]}")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, rtol=0.0, atol=1e-6):
        raise ValueError("probs rows must be probability vectors (non-negative, summing to 1)")
    n = p.shape[0]
    with np.errstate(divide="ignore"):
        log_p = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
    neg_entropy = (p * log_p).sum(axis=1)
    scores = np.empty(s)
    for i in range(s):
        lo, hi = i * n // s, (i + 1) * n // s
        marginal = p[lo:hi].mean(axis=0)
        with np.errstate(divide="ignore"):
            log_marginal = np.where(marginal > 0, np.log(np.where(marginal > 0, marginal, 1.0)), 0.0)
        cross = p[lo:hi] @ log_marginal
        scores[i] = np.exp(float(np.mean(neg_entropy[lo:hi] - cross)))
    return float(scores.mean()), float(scores.std())


def _squared_distances(a: Floats, b: Floats, b_norms: Floats) -> Floats:
    d2: Floats = (a * a).sum(axis=1)[:, None] + b_norms[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0)


def knn_squared_radii(features: NDArray[np.float64], k: int = 3) -> Floats:
    """``ρ_k(f_i)²``: the squared distance from each row to its k-th nearest other row [S35]."""
    kk = _positive_int(k, "k")
    f = _rows(features, "features", min_rows=kk + 1)
    norms = (f * f).sum(axis=1)
    radii = np.empty(f.shape[0])
    for lo in range(0, f.shape[0], PAIRWISE_CHUNK):
        d2 = _squared_distances(f[lo : lo + PAIRWISE_CHUNK], f, norms)
        rows = np.arange(d2.shape[0])
        d2[rows, lo + rows] = -np.inf  # the row itself sorts first, whatever rounding left there
        radii[lo : lo + d2.shape[0]] = np.partition(d2, kk, axis=1)[:, kk]
    return radii


def _coverage(manifold: Floats, queries: Floats, k: int) -> float:
    radii = knn_squared_radii(manifold, k)
    norms = (manifold * manifold).sum(axis=1)
    inside = 0
    for lo in range(0, queries.shape[0], PAIRWISE_CHUNK):
        d2 = _squared_distances(queries[lo : lo + PAIRWISE_CHUNK], manifold, norms)
        inside += int(np.count_nonzero((d2 <= radii[None, :]).any(axis=1)))
    return inside / int(queries.shape[0])


def precision_recall(
    real_features: NDArray[np.float64], fake_features: NDArray[np.float64], k: int = 3
) -> tuple[float, float]:
    """(precision, recall): the share of fake rows inside the real k-NN manifold, and vice versa [S36]."""
    kk = _positive_int(k, "k")
    real = _rows(real_features, "real_features", min_rows=kk + 1)
    fake = _rows(fake_features, "fake_features", min_rows=kk + 1)
    _pair(real, fake)
    return _coverage(real, fake, kk), _coverage(fake, real, kk)


def kid_subset_indices(
    num_real: int, num_fake: int, subsets: int, subset_size: int, seed: int = 0
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(subsets, subset_size) row indices into the real and the fake set, each row without replacement."""
    s = _positive_int(subsets, "subsets")
    m = _positive_int(subset_size, "subset_size")
    if m < 2:
        raise ValueError(f"subset_size must be >= 2 (the unbiased MMD² needs pairs); got {m}")
    if m > min(num_real, num_fake):
        raise ValueError(
            f"subset_size must be <= the smaller set ({num_real} real, {num_fake} fake rows); got {m}"
        )
    rng = np.random.default_rng(seed)
    real = np.empty((s, m), dtype=np.int64)
    fake = np.empty((s, m), dtype=np.int64)
    for i in range(s):
        real[i] = rng.choice(num_real, size=m, replace=False)
        fake[i] = rng.choice(num_fake, size=m, replace=False)
    return real, fake


def _mmd2_unbiased(x: Floats, y: Floats) -> float:
    m, d = x.shape
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real_features: NDArray[np.float64],
    fake_features: NDArray[np.float64],
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """(mean, std) over ``subsets`` random subsets of the unbiased MMD² with kernel ``(x·y/d + 1)³`` [S39]."""
    real = _rows(real_features, "real_features", min_rows=2)
    fake = _rows(fake_features, "fake_features", min_rows=2)
    _pair(real, fake)
    real_idx, fake_idx = kid_subset_indices(real.shape[0], fake.shape[0], subsets, subset_size, seed)
    values = np.array([_mmd2_unbiased(real[r], fake[f]) for r, f in zip(real_idx, fake_idx, strict=True)])
    return float(values.mean()), float(values.std())
