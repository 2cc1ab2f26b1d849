"""One reverse step of each sampler and guidance ([S29]–[S31], §7), float64.

``out`` is a ``p_mean_variance`` dict (keys ``mean``, ``variance``, ``log_variance``, ``pred_xstart``).
Each step returns the new sample array.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import (
    FloatArray,
    IntArray,
    as_float64,
    check_batch,
    check_same_shape,
    check_timesteps,
    gather,
)
from reference.process import predict_eps_from_xstart, predict_xstart_from_eps, q_posterior_mean_variance
from reference.schedule import DiffusionTables

OUT_KEYS: tuple[str, ...] = ("mean", "variance", "log_variance", "pred_xstart")


def _check_out(out: dict[str, FloatArray]) -> dict[str, FloatArray]:
    missing = [key for key in OUT_KEYS if key not in out]
    if missing:
        raise ValueError(f"out: missing keys {missing}; a p_mean_variance dict has {', '.join(OUT_KEYS)}")
    checked = {key: as_float64(out[key], f"out[{key!r}]") for key in OUT_KEYS}
    for key in OUT_KEYS[1:]:
        check_same_shape(checked[key], f"out[{key!r}]", checked["mean"], "out['mean']")
    return checked


def _nonzero_mask(t: IntArray, ndim: int) -> FloatArray:
    """1[t > 0] shaped (B, 1, …, 1)."""
    mask: FloatArray = (t != 0).astype(np.float64).reshape((-1,) + (1,) * (ndim - 1))
    return mask


def _check_t(t: ArrayLike, num_timesteps: int, x: FloatArray, name: str) -> IntArray:
    t_arr = check_timesteps(t, num_timesteps)
    check_batch(x, name, t_arr)
    return t_arr


def p_sample_step(out: dict[str, FloatArray], t: ArrayLike, noise: ArrayLike) -> FloatArray:
    """x_{t−1} = μ_θ + 1[t>0]·e^{½ log Σ}·z [S29]."""
    parts = _check_out(out)
    z = as_float64(noise, "noise")
    check_same_shape(z, "noise", parts["mean"], "out['mean']")
    t_arr = check_timesteps(t, np.iinfo(np.int64).max)
    check_batch(parts["mean"], "out['mean']", t_arr)
    return parts["mean"] + _nonzero_mask(t_arr, z.ndim) * np.exp(0.5 * parts["log_variance"]) * z


def ddim_sigma(tab: DiffusionTables, t: IntArray, eta: float, ndim: int) -> FloatArray:
    """σ = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev) [S30]."""
    alpha_bar = gather(tab.alphas_cumprod, t, ndim)
    alpha_bar_prev = gather(tab.alphas_cumprod_prev, t, ndim)
    return (
        eta * np.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar)) * np.sqrt(1.0 - alpha_bar / alpha_bar_prev)
    )


def ddim_step(
    tab: DiffusionTables,
    out: dict[str, FloatArray],
    x_t: ArrayLike,
    t: ArrayLike,
    noise: ArrayLike | None,
    eta: float,
) -> FloatArray:
    """x_{t−1} = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε̂ + 1[t>0] σ z, ε̂ from x̂_0 by [S9] [S30].

    ``noise`` may be ``None`` only when ``eta == 0`` (the step is then deterministic).
    """
    if not (math.isfinite(eta) and eta >= 0.0):
        raise ValueError(f"eta: expected a finite value >= 0, got {eta!r}")
    parts = _check_out(out)
    xt = as_float64(x_t, "x_t")
    check_same_shape(xt, "x_t", parts["pred_xstart"], "out['pred_xstart']")
    t_arr = _check_t(t, tab.num_timesteps, xt, "x_t")
    if noise is None:
        if eta != 0.0:
            raise ValueError("noise: required when eta > 0")
        z = np.zeros_like(xt)
    else:
        z = as_float64(noise, "noise")
        check_same_shape(z, "noise", xt, "x_t")
    eps = predict_eps_from_xstart(tab, xt, t_arr, parts["pred_xstart"])
    sigma = ddim_sigma(tab, t_arr, eta, xt.ndim)
    alpha_bar_prev = gather(tab.alphas_cumprod_prev, t_arr, xt.ndim)
    mean_pred = (
        parts["pred_xstart"] * np.sqrt(alpha_bar_prev)
        # >= 0 in exact arithmetic; clamped because at η = 1 it cancels to ~0 and rounding may go below.
        + np.sqrt(np.maximum(1.0 - alpha_bar_prev - sigma**2, 0.0)) * eps
    )
    return mean_pred + _nonzero_mask(t_arr, xt.ndim) * sigma * z


def ddim_reverse_step(
    tab: DiffusionTables, out: dict[str, FloatArray], x_t: ArrayLike, t: ArrayLike
) -> FloatArray:
    """x_{t+1} = √ᾱ_next x̂_0 + √(1 − ᾱ_next) ε̂, with the net evaluated at t (η = 0) [S31]."""
    parts = _check_out(out)
    xt = as_float64(x_t, "x_t")
    check_same_shape(xt, "x_t", parts["pred_xstart"], "out['pred_xstart']")
    t_arr = _check_t(t, tab.num_timesteps, xt, "x_t")
    eps = predict_eps_from_xstart(tab, xt, t_arr, parts["pred_xstart"])
    alpha_bar_next = gather(tab.alphas_cumprod_next, t_arr, xt.ndim)
    return parts["pred_xstart"] * np.sqrt(alpha_bar_next) + np.sqrt(1.0 - alpha_bar_next) * eps


def condition_mean(out: dict[str, FloatArray], grad: ArrayLike) -> FloatArray:
    """μ + Σ·g with g = ∇_x log p(y|x_t) (guided ancestral sampling, §7)."""
    parts = _check_out(out)
    g = as_float64(grad, "grad")
    check_same_shape(g, "grad", parts["mean"], "out['mean']")
    return parts["mean"] + parts["variance"] * g


def condition_score(
    tab: DiffusionTables, out: dict[str, FloatArray], x_t: ArrayLike, t: ArrayLike, grad: ArrayLike
) -> dict[str, FloatArray]:
    """ε̂' = ε̂ − √(1 − ᾱ_t)·g; x̂_0' from ε̂' by [S9]; μ' = μ̃(x̂_0', x_t) by [S7] (guided DDIM, §7).

    Returns a new dict with ``pred_xstart`` and ``mean`` replaced, ``variance`` / ``log_variance`` kept.
    """
    parts = _check_out(out)
    xt = as_float64(x_t, "x_t")
    check_same_shape(xt, "x_t", parts["pred_xstart"], "out['pred_xstart']")
    t_arr = _check_t(t, tab.num_timesteps, xt, "x_t")
    g = as_float64(grad, "grad")
    check_same_shape(g, "grad", xt, "x_t")
    eps = predict_eps_from_xstart(tab, xt, t_arr, parts["pred_xstart"])
    eps = eps - gather(tab.sqrt_one_minus_alphas_cumprod, t_arr, xt.ndim) * g
    pred_xstart = predict_xstart_from_eps(tab, xt, t_arr, eps)
    mean, _, _ = q_posterior_mean_variance(tab, pred_xstart, xt, t_arr)
    return {**parts, "pred_xstart": pred_xstart, "mean": mean}


def tempered_noise(noise: ArrayLike, temperature: float) -> FloatArray:
    """z_τ = τ·z, the step noise of [S29] / [S30] at temperature τ > 0 (τ = 1: untempered) [S45]."""
    if not (math.isfinite(temperature) and temperature > 0.0):
        raise ValueError(f"temperature: expected a finite value > 0, got {temperature!r}")
    scaled: FloatArray = temperature * as_float64(noise, "noise")
    return scaled


def initial_latent(noise: ArrayLike, init_temperature: float) -> FloatArray:
    """x_T = τ₀·z with z ~ N(0, I), the starting point of a sampling loop (τ₀ = 1: untempered) [S46]."""
    if not (math.isfinite(init_temperature) and init_temperature > 0.0):
        raise ValueError(f"init_temperature: expected a finite value > 0, got {init_temperature!r}")
    start: FloatArray = init_temperature * as_float64(noise, "noise")
    return start


def ddim_inversion(
    tab: DiffusionTables,
    mean_variance: Callable[[FloatArray, IntArray], dict[str, FloatArray]],
    x_0: ArrayLike,
) -> FloatArray:
    """x_T = R_{T−1}(… R_1(R_0(x_0))), R_t the inversion step x_t → x_{t+1} of [S31] [S47].

    ``mean_variance(x_t, t)`` returns the ``p_mean_variance`` dict of the model at (x_t, t).
    """
    x = as_float64(x_0, "x_0")
    for step in range(tab.num_timesteps):
        t = np.full(x.shape[0], step, dtype=np.int64)
        x = ddim_reverse_step(tab, mean_variance(x, t), x, t)
    return x
