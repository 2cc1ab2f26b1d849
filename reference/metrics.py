"""Sample-quality metrics on feature vectors ([S32]–[S39]), float64, written for clarity, not speed.

Features are rows of an (n, d) array (Inception pool features, logits turned into probabilities, or any
other embedding).  Nothing here draws random numbers: the KID subsets are passed in as index arrays.
The distances in [S35]–[S36] are computed from explicit differences (no ‖a‖² + ‖b‖² − 2a·b expansion),
and the matrix square root in [S33] through symmetric eigendecompositions, so the oracle shares no shortcut
with ``impl.evaluate``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import FloatArray, IntArray, as_float64, check_positive_int


def _features(x: ArrayLike, name: str, min_rows: int = 1) -> FloatArray:
    f = as_float64(x, name)
    if f.ndim != 2 or f.shape[0] < min_rows or f.shape[1] < 1:
        raise ValueError(f"{name}: expected shape (n, d) with n >= {min_rows} and d >= 1, got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{name}: expected finite values")
    return f


def _same_dim(a: FloatArray, a_name: str, b: FloatArray, b_name: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{b_name}: expected {a.shape[1]} columns (as {a_name}), got {b.shape[1]}")


def feature_statistics(features: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """μ = (1/n) Σ_i f_i,  Σ = (1/(n−1)) Σ_i (f_i − μ)(f_i − μ)ᵀ [S32]."""
    f = _features(features, "features", min_rows=2)
    mu = f.sum(axis=0) / f.shape[0]
    centred = f - mu
    sigma = centred.T @ centred / (f.shape[0] - 1)
    return mu, sigma


def psd_sqrt(a: ArrayLike) -> FloatArray:
    """A^½ = V diag(√max(λ, 0)) Vᵀ for symmetric A = V diag(λ) Vᵀ (helper of [S33])."""
    m = as_float64(a, "a")
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a: expected a square matrix, got shape {m.shape}")
    w, v = np.linalg.eigh((m + m.T) / 2.0)
    root: FloatArray = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    return root


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """d² = ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1^½ Σ2 Σ1^½)^½ [S33].

    ``tr (Σ1 Σ2)^½`` equals ``tr (Σ1^½ Σ2 Σ1^½)^½`` (the two matrices are similar), and the latter is the
    sum of square roots of the eigenvalues of a symmetric positive semi-definite matrix.
    """
    m1, m2 = as_float64(mu1, "mu1"), as_float64(mu2, "mu2")
    s1, s2 = as_float64(sigma1, "sigma1"), as_float64(sigma2, "sigma2")
    d = m1.shape[0] if m1.ndim == 1 else -1
    for name, arr, shape in (("mu2", m2, (d,)), ("sigma1", s1, (d, d)), ("sigma2", s2, (d, d))):
        if d < 1 or arr.shape != shape:
            raise ValueError(f"{name}: expected shape {shape} (mu1 is {m1.shape}), got {arr.shape}")
    root1 = psd_sqrt(s1)
    inner = root1 @ s2 @ root1
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    trace_root = float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))
    delta = m1 - m2
    return float(delta @ delta + np.trace(s1) + np.trace(s2) - 2.0 * trace_root)


def split_bounds(n: int, splits: int) -> list[tuple[int, int]]:
    """Part i of n rows in ``splits`` parts: rows [⌊i n / s⌋, ⌊(i+1) n / s⌋) (helper of [S34])."""
    return [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]


def inception_score(probs: ArrayLike, splits: int = 10) -> tuple[float, float]:
    """IS_i = exp( mean_{x ∈ part i} Σ_k p(k|x) (log p(k|x) − log p̄_i(k)) ), p̄_i = mean over part i [S34].

    Returns (mean_i IS_i, std_i IS_i) over the ``splits`` consecutive parts of ``split_bounds``; the
    standard deviation divides by the number of parts (ddof 0); ``0 log 0 = 0``.
    """
    p = _features(probs, "probs")
    s = check_positive_int(splits, "splits")
    if p.shape[0] < s:
        raise ValueError(f"probs: expected at least splits = {s} rows, got {p.shape[0]}")
    if np.any(p < 0) or np.any(np.abs(p.sum(axis=1) - 1.0) > 1e-6):
        raise ValueError("probs: expected rows of probabilities (non-negative, summing to 1)")
    scores = []
    for lo, hi in split_bounds(p.shape[0], s):
        part = p[lo:hi]
        marginal = part.mean(axis=0)
        total = 0.0
        for row in part:
            for k in range(row.shape[0]):
                if row[k] > 0.0:
                    total += row[k] * (np.log(row[k]) - np.log(marginal[k]))
        scores.append(float(np.exp(total / part.shape[0])))
    values = np.array(scores)
    return float(values.mean()), float(np.sqrt(np.mean((values - values.mean()) ** 2)))


def pairwise_distances(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """D_ij = ‖a_i − b_j‖₂, from the differences themselves (helper of [S35]–[S36])."""
    x, y = _features(a, "a"), _features(b, "b")
    _same_dim(x, "a", y, "b")
    distances: FloatArray = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1))
    return distances


def knn_radii(features: ArrayLike, k: int = 3) -> FloatArray:
    """ρ_k(f_i) = the k-th smallest of ‖f_i − f_j‖ over j ≠ i [S35]."""
    f = _features(features, "features")
    kk = check_positive_int(k, "k")
    if f.shape[0] < kk + 1:
        raise ValueError(f"features: expected at least k + 1 = {kk + 1} rows, got {f.shape[0]}")
    distances = pairwise_distances(f, f)
    radii = np.empty(f.shape[0])
    for i in range(f.shape[0]):
        others = np.delete(distances[i], i)
        radii[i] = np.sort(others)[kk - 1]
    return radii


def manifold_coverage(manifold: ArrayLike, queries: ArrayLike, k: int = 3) -> float:
    """(1/m) Σ_j 1[∃ i: ‖q_j − f_i‖ ≤ ρ_k(f_i)], the share of queries inside the k-NN manifold [S36]."""
    f, q = _features(manifold, "manifold"), _features(queries, "queries")
    _same_dim(f, "manifold", q, "queries")
    radii = knn_radii(f, k)
    inside = pairwise_distances(q, f) <= radii[None, :]
    return float(np.mean(inside.any(axis=1)))


def precision_recall(real_features: ArrayLike, fake_features: ArrayLike, k: int = 3) -> tuple[float, float]:
    """precision = coverage(real manifold, fake), recall = coverage(fake manifold, real) [S36]."""
    real = _features(real_features, "real_features")
    fake = _features(fake_features, "fake_features")
    _same_dim(real, "real_features", fake, "fake_features")
    return manifold_coverage(real, fake, k), manifold_coverage(fake, real, k)


def polynomial_kernel(x: ArrayLike, y: ArrayLike) -> FloatArray:
    """k(x, y) = (x·y / d + 1)³ for rows x of X and y of Y, d the number of columns [S37]."""
    a, b = _features(x, "x"), _features(y, "y")
    _same_dim(a, "x", b, "y")
    gram: FloatArray = (a @ b.T / a.shape[1] + 1.0) ** 3
    return gram


def mmd2_unbiased(x: ArrayLike, y: ArrayLike) -> float:
    """MMD²_u = Σ_{i≠j} k(x_i,x_j)/(m(m−1)) + Σ_{i≠j} k(y_i,y_j)/(m(m−1)) − 2 Σ_{i,j} k(x_i,y_j)/m² [S38].

    ``x`` and ``y`` hold the same number m >= 2 of rows.
    """
    a, b = _features(x, "x", min_rows=2), _features(y, "y", min_rows=2)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"y: expected {a.shape[0]} rows (as x), got {b.shape[0]}")
    m = a.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    off = ~np.eye(m, dtype=bool)
    return float(k_xx[off].sum() / (m * (m - 1)) + k_yy[off].sum() / (m * (m - 1)) - 2.0 * k_xy.mean())


def kernel_inception_distance(
    real_features: ArrayLike, fake_features: ArrayLike, real_indices: ArrayLike, fake_indices: ArrayLike
) -> tuple[float, float]:
    """KID = mean_s MMD²_u(real[R_s], fake[F_s]) and its std over subsets s (ddof 0) [S39].

    ``real_indices`` and ``fake_indices`` are (subsets, m) integer arrays: row s holds the rows of subset s
    (the caller draws them, without replacement within a row).
    """
    real = _features(real_features, "real_features")
    fake = _features(fake_features, "fake_features")
    _same_dim(real, "real_features", fake, "fake_features")
    r_idx: IntArray = np.asarray(real_indices)
    f_idx: IntArray = np.asarray(fake_indices)
    for name, idx, n in (("real_indices", r_idx, real.shape[0]), ("fake_indices", f_idx, fake.shape[0])):
        if not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 2 or idx.shape[0] < 1:
            raise ValueError(f"{name}: expected a (subsets, m) integer array, got {idx.dtype} {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"{name}: expected indices in [0, {n - 1}]")
    if r_idx.shape != f_idx.shape:
        raise ValueError(f"fake_indices: expected shape {r_idx.shape} (as real_indices), got {f_idx.shape}")
    values = np.array([mmd2_unbiased(real[r], fake[f]) for r, f in zip(r_idx, f_idx, strict=True)])
    return float(values.mean()), float(np.sqrt(np.mean((values - values.mean()) ** 2)))
