"""Fréchet distance between two Gaussians fitted to feature vectors (the FID formula, any feature space).

``scipy.linalg.sqrtm(Σ1 Σ2)`` is computed in float64.  In exact arithmetic ``Σ1 Σ2`` is similar to the
positive semi-definite ``Σ1^½ Σ2 Σ1^½``, so its square root has real non-negative eigenvalues; rounding can
leave tiny imaginary parts (and a singular product can make ``sqrtm`` fail).  Handling:
1. the root is trusted when it is finite and squares back to the product (``‖R R − A‖_F <= 1e-6 ‖A‖_F``;
   scipy's "singular matrix" warning is silenced because this check decides); otherwise both covariances
   get ``ridge·I`` added (``ridge = 1e-6`` times the mean variance, or ``1e-6`` when that is 0) and the
   root is recomputed, which biases the trace by about ``2 Σ_i √(ridge·λ_i)``;
2. the imaginary part of the diagonal is discarded when it is at most ``1e-6 · max(1, |tr Σ1| + |tr Σ2|)``;
   larger imaginary parts mean the inputs were not covariance matrices, and raise ValueError;
3. the distance is non-negative in exact arithmetic; a rounding result below 0 (about ``-1e-13`` for
   identical inputs) is returned as 0.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

__all__ = ["IMAGINARY_TOLERANCE", "frechet_distance", "gaussian_stats"]

IMAGINARY_TOLERANCE = 1e-6
SQRTM_RESIDUAL_TOLERANCE = 1e-6


def gaussian_stats(features: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean ``μ = mean_i f_i`` and covariance ``Σ = Σ_i (f_i − μ)(f_i − μ)ᵀ / (n − 1)`` of rows ``f_i``."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (n, d) with n >= 2 rows; got shape {f.shape}")
    mu = f.mean(axis=0)
    sigma = np.atleast_2d(np.cov(f, rowvar=False, ddof=1))
    return mu, sigma


def _check_pair(
    mu: NDArray[np.float64], sigma: NDArray[np.float64], name: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    m = np.asarray(mu, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    if m.ndim != 1 or s.shape != (m.shape[0], m.shape[0]):
        raise ValueError(f"mu{name} must be (d,) and sigma{name} (d, d); got {m.shape} and {s.shape}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s))):
        raise ValueError(f"mu{name} and sigma{name} must be finite")
    return m, s


def _sqrtm_checked(product: NDArray[np.float64]) -> tuple[NDArray[np.complex128], bool]:
    """``R = sqrtm(product)`` and whether to trust it: finite and ``‖R R − A‖_F <= 1e-6 ‖A‖_F``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = np.asarray(scipy.linalg.sqrtm(product)).astype(np.complex128)
    if not np.all(np.isfinite(root)):
        return root, False
    residual = float(np.linalg.norm(root @ root - product))
    return root, residual <= SQRTM_RESIDUAL_TOLERANCE * float(np.linalg.norm(product))


def frechet_distance(
    mu1: NDArray[np.float64],
    sigma1: NDArray[np.float64],
    mu2: NDArray[np.float64],
    sigma2: NDArray[np.float64],
) -> float:
    """``d² = ‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½)`` between N(μ1, Σ1) and N(μ2, Σ2) (the FID formula)."""
    m1, s1 = _check_pair(mu1, sigma1, "1")
    m2, s2 = _check_pair(mu2, sigma2, "2")
    if m1.shape != m2.shape:
        raise ValueError(f"mu1 and mu2 must have the same dimension; got {m1.shape} and {m2.shape}")
    root, trusted = _sqrtm_checked(s1 @ s2)
    if not trusted:
        scale = float(np.trace(s1) + np.trace(s2)) / (2 * m1.shape[0])
        ridge = 1e-6 * scale if scale > 0 else 1e-6
        eye = np.eye(m1.shape[0])
        root, _ = _sqrtm_checked((s1 + ridge * eye) @ (s2 + ridge * eye))
    diagonal = np.diagonal(root)
    allowed = IMAGINARY_TOLERANCE * max(1.0, abs(float(np.trace(s1))) + abs(float(np.trace(s2))))
    worst = float(np.max(np.abs(diagonal.imag)))
    if worst > allowed:
        raise ValueError(
            f"sqrtm(sigma1 @ sigma2) has imaginary parts up to {worst:.3g} (> {allowed:.3g}); "
            "sigma1 and sigma2 must be symmetric positive semi-definite covariance matrices"
        )
    trace_root = float(np.sum(diagonal.real))
    delta = m1 - m2
    distance = float(delta @ delta + np.trace(s1) + np.trace(s2) - 2.0 * trace_root)
    return max(distance, 0.0)
