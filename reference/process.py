"""Forward process, posterior and the reverse mean/variance from a network output ([S5]–[S14]), float64.

Table values are gathered at ``t`` (shape ``(B,)``) and broadcast over the non-batch axes of the data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import (
    LEARNED_VAR_TYPES,
    MEAN_TYPES,
    VAR_TYPES,
    FloatArray,
    IntArray,
    as_float64,
    check_batch,
    check_choice,
    check_same_shape,
    check_timesteps,
    gather,
)
from reference.schedule import DiffusionTables

DenoisedFn = Callable[[FloatArray], FloatArray]


def _data_and_t(tab: DiffusionTables, x: ArrayLike, name: str, t: ArrayLike) -> tuple[FloatArray, IntArray]:
    """Coerce ``x`` to float64 and check ``t`` against the table and ``x``'s batch axis."""
    x_arr = as_float64(x, name)
    t_arr = check_timesteps(t, tab.num_timesteps)
    check_batch(x_arr, name, t_arr)
    return x_arr, t_arr


def _like(x: ArrayLike, name: str, reference: FloatArray, reference_name: str) -> FloatArray:
    """Coerce ``x`` to float64 and check it has ``reference``'s shape."""
    arr = as_float64(x, name)
    check_same_shape(arr, name, reference, reference_name)
    return arr


def q_mean_variance(
    tab: DiffusionTables, x_start: ArrayLike, t: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """q(x_t|x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I), log-variance log(1 − ᾱ_t) [S5]."""
    x0, t_arr = _data_and_t(tab, x_start, "x_start", t)
    mean = gather(tab.sqrt_alphas_cumprod, t_arr, x0.ndim) * x0
    variance = np.broadcast_to(gather(1.0 - tab.alphas_cumprod, t_arr, x0.ndim), x0.shape).copy()
    log_variance = np.broadcast_to(gather(tab.log_one_minus_alphas_cumprod, t_arr, x0.ndim), x0.shape).copy()
    return mean, variance, log_variance


def q_sample(tab: DiffusionTables, x_start: ArrayLike, t: ArrayLike, noise: ArrayLike) -> FloatArray:
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε [S6]."""
    x0, t_arr = _data_and_t(tab, x_start, "x_start", t)
    eps = _like(noise, "noise", x0, "x_start")
    return (
        gather(tab.sqrt_alphas_cumprod, t_arr, x0.ndim) * x0
        + gather(tab.sqrt_one_minus_alphas_cumprod, t_arr, x0.ndim) * eps
    )


def q_posterior_mean_variance(
    tab: DiffusionTables, x_start: ArrayLike, x_t: ArrayLike, t: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """μ̃_t = c1_t x_0 + c2_t x_t [S7]; β̃_t and its clipped log [S8]."""
    x0, t_arr = _data_and_t(tab, x_start, "x_start", t)
    xt = _like(x_t, "x_t", x0, "x_start")
    mean = (
        gather(tab.posterior_mean_coef1, t_arr, x0.ndim) * x0
        + gather(tab.posterior_mean_coef2, t_arr, x0.ndim) * xt
    )
    variance = np.broadcast_to(gather(tab.posterior_variance, t_arr, x0.ndim), x0.shape).copy()
    log_variance = np.broadcast_to(
        gather(tab.posterior_log_variance_clipped, t_arr, x0.ndim), x0.shape
    ).copy()
    return mean, variance, log_variance


def predict_xstart_from_eps(tab: DiffusionTables, x_t: ArrayLike, t: ArrayLike, eps: ArrayLike) -> FloatArray:
    """x_0 = √(1/ᾱ_t) x_t − √(1/ᾱ_t − 1) ε [S9]."""
    xt, t_arr = _data_and_t(tab, x_t, "x_t", t)
    e = _like(eps, "eps", xt, "x_t")
    return (
        gather(tab.sqrt_recip_alphas_cumprod, t_arr, xt.ndim) * xt
        - gather(tab.sqrt_recipm1_alphas_cumprod, t_arr, xt.ndim) * e
    )


def predict_eps_from_xstart(
    tab: DiffusionTables, x_t: ArrayLike, t: ArrayLike, pred_xstart: ArrayLike
) -> FloatArray:
    """ε = (√(1/ᾱ_t) x_t − x_0) / √(1/ᾱ_t − 1), the inverse of [S9]."""
    xt, t_arr = _data_and_t(tab, x_t, "x_t", t)
    x0 = _like(pred_xstart, "pred_xstart", xt, "x_t")
    return (gather(tab.sqrt_recip_alphas_cumprod, t_arr, xt.ndim) * xt - x0) / gather(
        tab.sqrt_recipm1_alphas_cumprod, t_arr, xt.ndim
    )


def velocity(tab: DiffusionTables, x_start: ArrayLike, t: ArrayLike, noise: ArrayLike) -> FloatArray:
    """v = √ᾱ_t ε − √(1 − ᾱ_t) x_0, the v-prediction target [S40]."""
    x0, t_arr = _data_and_t(tab, x_start, "x_start", t)
    e = _like(noise, "noise", x0, "x_start")
    return (
        gather(tab.sqrt_alphas_cumprod, t_arr, x0.ndim) * e
        - gather(tab.sqrt_one_minus_alphas_cumprod, t_arr, x0.ndim) * x0
    )


def predict_xstart_from_v(tab: DiffusionTables, x_t: ArrayLike, t: ArrayLike, v: ArrayLike) -> FloatArray:
    """x̂_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v̂ [S41]."""
    xt, t_arr = _data_and_t(tab, x_t, "x_t", t)
    vel = _like(v, "v", xt, "x_t")
    return (
        gather(tab.sqrt_alphas_cumprod, t_arr, xt.ndim) * xt
        - gather(tab.sqrt_one_minus_alphas_cumprod, t_arr, xt.ndim) * vel
    )


def predict_eps_from_v(tab: DiffusionTables, x_t: ArrayLike, t: ArrayLike, v: ArrayLike) -> FloatArray:
    """ε̂ = √(1 − ᾱ_t) x_t + √ᾱ_t v̂ [S41]."""
    xt, t_arr = _data_and_t(tab, x_t, "x_t", t)
    vel = _like(v, "v", xt, "x_t")
    return (
        gather(tab.sqrt_one_minus_alphas_cumprod, t_arr, xt.ndim) * xt
        + gather(tab.sqrt_alphas_cumprod, t_arr, xt.ndim) * vel
    )


def predict_xstart_from_xprev(
    tab: DiffusionTables, x_t: ArrayLike, t: ArrayLike, xprev: ArrayLike
) -> FloatArray:
    """x_0 = x_{t−1}/c1_t − (c2_t/c1_t) x_t [S10]."""
    xt, t_arr = _data_and_t(tab, x_t, "x_t", t)
    xp = _like(xprev, "xprev", xt, "x_t")
    coef1 = gather(tab.posterior_mean_coef1, t_arr, xt.ndim)
    coef2 = gather(tab.posterior_mean_coef2, t_arr, xt.ndim)
    return (1.0 / coef1) * xp - (coef2 / coef1) * xt


def fixed_large_variance_table(tab: DiffusionTables) -> FloatArray:
    """[β̃_1, β_1, …, β_{T−1}] — FIXED_LARGE's variance, β̃_1 standing in at t = 0 (β_0 when T = 1) [S12]."""
    first = tab.posterior_variance[1] if tab.num_timesteps > 1 else tab.betas[0]
    return np.append(first, tab.betas[1:])


def model_variance(
    tab: DiffusionTables,
    model_var_values: ArrayLike | None,
    t: ArrayLike,
    *,
    model_var_type: str,
    shape: tuple[int, ...],
) -> tuple[FloatArray, FloatArray]:
    """Σ_θ and log Σ_θ: FIXED_SMALL β̃ [S11], FIXED_LARGE β [S12], LEARNED log Σ = v [S13],
    LEARNED_RANGE log Σ = f log β_t + (1 − f) log β̃_t(clipped), f = (v + 1)/2 [S14].

    ``model_var_values`` (the variance channels, of ``shape``) is used by the learned types only and must be
    ``None`` for the fixed ones.  Both outputs have ``shape``.
    """
    check_choice(model_var_type, "model_var_type", VAR_TYPES)
    shape = tuple(int(s) for s in shape)
    t_arr = check_timesteps(t, tab.num_timesteps)
    if len(shape) < 1 or shape[0] != t_arr.shape[0]:
        raise ValueError(
            f"shape: expected a leading batch axis of size {t_arr.shape[0]} (len(t)), got {shape}"
        )
    if model_var_type not in LEARNED_VAR_TYPES:
        if model_var_values is not None:
            raise ValueError(f"model_var_values: must be None for the fixed variance type {model_var_type}")
        if model_var_type == "FIXED_SMALL":
            variance_table, log_table = tab.posterior_variance, tab.posterior_log_variance_clipped
        else:
            variance_table = fixed_large_variance_table(tab)
            log_table = np.log(variance_table)
        variance = np.broadcast_to(gather(variance_table, t_arr, len(shape)), shape).copy()
        log_variance = np.broadcast_to(gather(log_table, t_arr, len(shape)), shape).copy()
        return variance, log_variance
    if model_var_values is None:
        raise ValueError(f"model_var_values: required (an array of shape {shape}) for {model_var_type}")
    values = as_float64(model_var_values, "model_var_values")
    if values.shape != shape:
        raise ValueError(f"model_var_values: expected shape {shape}, got {values.shape}")
    if model_var_type == "LEARNED":
        return np.exp(values), values.copy()
    frac = (values + 1.0) / 2.0
    min_log = gather(tab.posterior_log_variance_clipped, t_arr, len(shape))
    max_log = gather(np.log(tab.betas), t_arr, len(shape))
    log_variance = frac * max_log + (1.0 - frac) * min_log
    return np.exp(log_variance), log_variance


def split_model_output(
    model_output: ArrayLike, x_t: FloatArray, model_var_type: str
) -> tuple[FloatArray, FloatArray | None]:
    """Split the net output on axis 1 into (mean part, variance part); 2C channels if Σ is learned."""
    output = as_float64(model_output, "model_output")
    if model_var_type not in LEARNED_VAR_TYPES:
        check_same_shape(output, "model_output", x_t, "x_t")
        return output, None
    if x_t.ndim < 2:
        raise ValueError(f"x_t: a learned variance needs a channel axis 1, got shape {x_t.shape}")
    expected = (x_t.shape[0], 2 * x_t.shape[1], *x_t.shape[2:])
    if output.shape != expected:
        raise ValueError(
            f"model_output: expected shape {expected} (2C channels for {model_var_type}), got {output.shape}"
        )
    channels = x_t.shape[1]
    return output[:, :channels], output[:, channels:]


def process_xstart(x: FloatArray, *, clip_denoised: bool, denoised_fn: DenoisedFn | None) -> FloatArray:
    """x̂_0 → denoised_fn(x̂_0), then clipped to [−1, 1] when ``clip_denoised`` (§3)."""
    if denoised_fn is not None:
        x = as_float64(denoised_fn(x), "denoised_fn(pred_xstart)")
    if clip_denoised:
        x = np.clip(x, -1.0, 1.0)
    return x


def p_mean_variance(
    tab: DiffusionTables,
    model_output: ArrayLike,
    x_t: ArrayLike,
    t: ArrayLike,
    *,
    model_mean_type: str,
    model_var_type: str,
    clip_denoised: bool = True,
    denoised_fn: DenoisedFn | None = None,
) -> dict[str, FloatArray]:
    """p_θ(x_{t−1}|x_t) = N(μ_θ, Σ_θ): μ_θ = μ̃(x̂_0, x_t) [S7] with x̂_0 by [S9] (EPSILON), [S41]
    (VELOCITY) or the output (START_X); PREVIOUS_X: μ_θ = output, x̂_0 by [S10]; Σ_θ by [S11]–[S14].

    Returns ``mean``, ``variance``, ``log_variance`` (all of x_t's shape) and ``pred_xstart``.
    """
    check_choice(model_mean_type, "model_mean_type", MEAN_TYPES)
    check_choice(model_var_type, "model_var_type", VAR_TYPES)
    xt, t_arr = _data_and_t(tab, x_t, "x_t", t)
    mean_part, var_part = split_model_output(model_output, xt, model_var_type)
    variance, log_variance = model_variance(
        tab, var_part, t_arr, model_var_type=model_var_type, shape=xt.shape
    )
    if model_mean_type == "PREVIOUS_X":
        raw_xstart = predict_xstart_from_xprev(tab, xt, t_arr, mean_part)
    elif model_mean_type == "START_X":
        raw_xstart = mean_part
    elif model_mean_type == "VELOCITY":
        raw_xstart = predict_xstart_from_v(tab, xt, t_arr, mean_part)
    else:
        raw_xstart = predict_xstart_from_eps(tab, xt, t_arr, mean_part)
    pred_xstart = process_xstart(raw_xstart, clip_denoised=clip_denoised, denoised_fn=denoised_fn)
    if model_mean_type == "PREVIOUS_X":
        mean = mean_part.copy()
    else:
        mean, _, _ = q_posterior_mean_variance(tab, pred_xstart, xt, t_arr)
    return {"mean": mean, "variance": variance, "log_variance": log_variance, "pred_xstart": pred_xstart}
