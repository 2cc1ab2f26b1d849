"""Training and evaluating a noisy-image classifier ([S58]–[S59]), float64, written for clarity.

A classifier ``f(x_t, τ(t)) -> logits z ∈ R^K`` is trained on ``x_t = q_sample(x₀, t)`` [S6] with the
cross-entropy [S59] and evaluated by its top-k accuracy within each quarter of the timestep range [S58].
Nothing here draws random numbers: the timesteps and logits are inputs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import FloatArray, IntArray, as_float64, check_positive_int, check_timesteps


def _logits(logits: ArrayLike) -> FloatArray:
    z = as_float64(logits, "logits")
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"logits: expected shape (B, K) with K >= 1, got {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits: expected finite values")
    return z


def _labels(labels: ArrayLike, batch: int, num_classes: int) -> IntArray:
    y = np.asarray(labels)
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels: expected an integer array, got dtype {y.dtype}")
    if y.shape != (batch,):
        raise ValueError(f"labels: expected shape ({batch},), got {y.shape}")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels: classes must lie in [0, {num_classes - 1}], got {y.min()}..{y.max()}")
    return y.astype(np.int64)


def cross_entropy(logits: ArrayLike, labels: ArrayLike) -> FloatArray:
    """ℓ_i = log Σ_k exp(z_ik) − z_{i,y_i} (= −log softmax(z_i)_{y_i}) [S59].

    The log-sum-exp is evaluated as ``m_i + log Σ_k exp(z_ik − m_i)`` with ``m_i = max_k z_ik``.
    """
    z = _logits(logits)
    y = _labels(labels, z.shape[0], z.shape[1])
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    loss: FloatArray = lse - z[np.arange(z.shape[0]), y]
    return loss


def topk_hits(logits: ArrayLike, labels: ArrayLike, k: int) -> FloatArray:
    """hit_i = 1[#{j : z_ij > z_{i,y_i}} + #{j < y_i : z_ij = z_{i,y_i}} < k]: y_i is among the first k
    classes when they are sorted by logit, descending, ties by class index (helper of [S58])."""
    z = _logits(logits)
    y = _labels(labels, z.shape[0], z.shape[1])
    k = check_positive_int(k, "k")
    own = z[np.arange(z.shape[0]), y][:, None]
    earlier = np.arange(z.shape[1])[None, :] < y[:, None]
    rank = (z > own).sum(axis=1) + ((z == own) & earlier).sum(axis=1)
    hits: FloatArray = (rank < k).astype(np.float64)
    return hits


def timestep_quarter(t: ArrayLike, num_timesteps: int, num_bins: int = 4) -> IntArray:
    """b(t) = ⌊n_b·t / T⌋: the bin of timestep t among n_b equal parts of [0, T) (helper of [S58])."""
    T = check_positive_int(num_timesteps, "num_timesteps")
    bins = check_positive_int(num_bins, "num_bins")
    steps = check_timesteps(t, T)
    out: IntArray = (steps * bins) // T
    return out


def binned_topk_accuracy(
    logits: ArrayLike, labels: ArrayLike, t: ArrayLike, num_timesteps: int, k: int, num_bins: int = 4
) -> FloatArray:
    """acc_k(b) = Σ_{i: b(t_i) = b} hit_i / #{i : b(t_i) = b}, b = 0 … n_b − 1; NaN for an empty bin [S58].

    ``hit_i`` is :func:`topk_hits`, ``b(t)`` :func:`timestep_quarter` (n_b = 4: the quarters
    [0, T/4), [T/4, T/2), [T/2, 3T/4), [3T/4, T)).
    """
    hits = topk_hits(logits, labels, k)
    which = timestep_quarter(t, num_timesteps, num_bins)
    if which.shape != hits.shape:
        raise ValueError(
            f"t: expected shape {hits.shape} (one timestep per row of logits), got {which.shape}"
        )
    acc: FloatArray = np.full(num_bins, np.nan)
    for b in range(num_bins):
        members = which == b
        if members.any():
            acc[b] = hits[members].sum() / members.sum()
    return acc
