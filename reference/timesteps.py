"""Timestep samplers: uniform, importance weights, loss-second-moment ([S24]–[S26]).  Pure functions."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import FloatArray, IntArray, as_float64, check_positive_int, check_timesteps

DEFAULT_UNIFORM_PROB = 0.001


def _check_probs(p: ArrayLike) -> FloatArray:
    probs = as_float64(p, "p")
    if probs.ndim != 1 or probs.shape[0] < 1:
        raise ValueError(f"p: expected a non-empty 1-D array of probabilities, got shape {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0.0) or not probs.sum() > 0.0:
        raise ValueError("p: probabilities must be finite, non-negative and have a positive sum")
    return probs


def uniform_timestep_probs(T: int) -> FloatArray:
    """p_t = 1/T [S25]."""
    T = check_positive_int(T, "T")
    return np.full(T, 1.0 / T)


def importance_weights(p: ArrayLike, t: ArrayLike) -> FloatArray:
    """w_t = 1/(T·p_t), so that E_{t∼p}[w_t L_t] = mean_t L_t [S24]."""
    probs = _check_probs(p)
    t_arr = check_timesteps(t, probs.shape[0])
    if np.any(probs[t_arr] == 0.0):
        raise ValueError("t: contains a timestep whose probability p_t is 0 (infinite weight)")
    weights: FloatArray = 1.0 / (probs.shape[0] * probs[t_arr])
    return weights


def sample_timesteps(p: ArrayLike, uniforms: ArrayLike) -> IntArray:
    """t = min{i : F(i) > u} with F the cumulative sum of p (normalised by its total), capped at T − 1 [S24].

    The inverse CDF of the categorical p: for u ∼ U[0, 1) this draws t with probability p_t.
    """
    probs = _check_probs(p)
    u = as_float64(uniforms, "uniforms")
    if u.ndim != 1 or np.any(u < 0.0) or np.any(u >= 1.0):
        raise ValueError("uniforms: expected a 1-D array of values in [0, 1)")
    cdf = np.cumsum(probs)
    cdf = cdf / cdf[-1]
    t = np.searchsorted(cdf, u, side="right")
    capped: IntArray = np.minimum(t, probs.shape[0] - 1).astype(np.int64)
    return capped


def _check_history(history: ArrayLike, counts: ArrayLike) -> tuple[FloatArray, IntArray]:
    hist = as_float64(history, "history")
    if hist.ndim != 2 or hist.shape[1] < 1:
        raise ValueError(f"history: expected shape (T, K) with K >= 1, got {hist.shape}")
    cnt = np.asarray(counts)
    if cnt.shape != (hist.shape[0],) or not np.issubdtype(cnt.dtype, np.integer):
        raise ValueError(
            f"counts: expected an integer array of shape ({hist.shape[0]},), got {cnt.dtype} {cnt.shape}"
        )
    if np.any(cnt < 0) or np.any(cnt > hist.shape[1]):
        raise ValueError(f"counts: every count must lie in [0, {hist.shape[1]}] (K)")
    return hist, cnt.astype(np.int64)


def update_loss_history(
    history: ArrayLike, counts: ArrayLike, t: ArrayLike, losses: ArrayLike
) -> tuple[FloatArray, IntArray]:
    """Append each (t_i, loss_i) in order to t_i's last-K window (oldest dropped when full) [S26].

    Pure: returns new ``(history, counts)``; the inputs are not modified.
    """
    hist, cnt = _check_history(history, counts)
    t_arr = check_timesteps(t, hist.shape[0])
    loss_arr = as_float64(losses, "losses")
    if loss_arr.shape != t_arr.shape:
        raise ValueError(f"losses: expected shape {t_arr.shape} (the shape of t), got {loss_arr.shape}")
    new_hist, new_cnt = hist.copy(), cnt.copy()
    window = hist.shape[1]
    for step, loss in zip(t_arr.tolist(), loss_arr.tolist(), strict=True):
        if new_cnt[step] == window:
            new_hist[step, :-1] = new_hist[step, 1:].copy()
            new_hist[step, -1] = loss
        else:
            new_hist[step, new_cnt[step]] = loss
            new_cnt[step] += 1
    return new_hist, new_cnt


def loss_second_moment_probs(
    history: ArrayLike, counts: ArrayLike, uniform_prob: float = DEFAULT_UNIFORM_PROB
) -> FloatArray:
    """p_t ∝ √(mean(L_t²)) over the last K losses, p ← (1 − u)p + u/T; uniform until every t has K [S26]."""
    hist, cnt = _check_history(history, counts)
    if not 0.0 <= uniform_prob <= 1.0:
        raise ValueError(f"uniform_prob: expected a value in [0, 1], got {uniform_prob!r}")
    num_timesteps = hist.shape[0]
    if np.any(cnt < hist.shape[1]):
        return uniform_timestep_probs(num_timesteps)
    weights = np.sqrt(np.mean(hist**2, axis=-1))
    weights = weights / np.sum(weights)
    mixed: FloatArray = weights * (1.0 - uniform_prob) + uniform_prob / num_timesteps
    return mixed
