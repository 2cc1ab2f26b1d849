"""Variational bound terms and training losses ([S18]–[S23]), float64, in bits/dim where a bound is meant."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import (
    LEARNED_VAR_TYPES,
    LOSS_TYPES,
    LOSS_WEIGHTINGS,
    MEAN_TYPES,
    VAR_TYPES,
    FloatArray,
    IntArray,
    as_float64,
    check_batch,
    check_choice,
    check_same_shape,
    check_timesteps,
    mean_over_non_batch,
)
from reference.gaussian import discretized_gaussian_log_likelihood, normal_kl
from reference.process import (
    p_mean_variance,
    predict_eps_from_xstart,
    q_mean_variance,
    q_posterior_mean_variance,
    q_sample,
    split_model_output,
    velocity,
)
from reference.schedule import DiffusionTables

LN2 = math.log(2.0)
HYBRID_LAMBDA_STEPS = 1000.0  # RESCALED_MSE weighs the VLB by T/1000, i.e. λ = 0.001 per step [S22]

ModelFn = Callable[[FloatArray, IntArray], ArrayLike]


def vb_term_bpd(
    tab: DiffusionTables,
    model_output: ArrayLike,
    x_start: ArrayLike,
    x_t: ArrayLike,
    t: ArrayLike,
    *,
    model_mean_type: str,
    model_var_type: str,
    clip_denoised: bool = True,
) -> dict[str, FloatArray]:
    """L_{t−1} = mean_dims KL(q(x_{t−1}|x_t, x_0) ‖ p_θ(x_{t−1}|x_t))/ln 2 for t > 0;
    L_0 = −mean_dims log p(x_0|x_1)/ln 2 by [S17] at t = 0 [S18].

    Returns ``output`` (B,) in bits/dim and the model's ``pred_xstart``.
    """
    x0 = as_float64(x_start, "x_start")
    xt = as_float64(x_t, "x_t")
    check_same_shape(xt, "x_t", x0, "x_start")
    t_arr = check_timesteps(t, tab.num_timesteps)
    check_batch(x0, "x_start", t_arr)
    true_mean, _, true_log_variance = q_posterior_mean_variance(tab, x0, xt, t_arr)
    out = p_mean_variance(
        tab,
        model_output,
        xt,
        t_arr,
        model_mean_type=model_mean_type,
        model_var_type=model_var_type,
        clip_denoised=clip_denoised,
    )
    kl = mean_over_non_batch(normal_kl(true_mean, true_log_variance, out["mean"], out["log_variance"])) / LN2
    log_likelihood = discretized_gaussian_log_likelihood(
        x0, means=out["mean"], log_scales=0.5 * out["log_variance"]
    )
    decoder_nll = -mean_over_non_batch(log_likelihood) / LN2
    return {"output": np.where(t_arr == 0, decoder_nll, kl), "pred_xstart": out["pred_xstart"]}


def prior_bpd(tab: DiffusionTables, x_start: ArrayLike) -> FloatArray:
    """L_T = mean_dims KL(q(x_T|x_0) ‖ N(0, I))/ln 2 [S19], shape (B,)."""
    x0 = as_float64(x_start, "x_start")
    if x0.ndim < 1:
        raise ValueError(f"x_start: expected shape (B, ...), got {x0.shape}")
    t_last = np.full(x0.shape[0], tab.num_timesteps - 1, dtype=np.int64)
    mean, _, log_variance = q_mean_variance(tab, x0, t_last)
    return mean_over_non_batch(normal_kl(mean, log_variance, 0.0, 0.0)) / LN2


def full_bound_bpd(
    tab: DiffusionTables,
    model_fn: ModelFn,
    x_start: ArrayLike,
    noises: ArrayLike,
    *,
    model_mean_type: str,
    model_var_type: str,
    clip_denoised: bool = True,
) -> dict[str, FloatArray]:
    """NLL bound Σ_t L_t + L_T in bits/dim, L_t at x_t = q_sample(x_0, t, noises[t]) [S20].

    ``model_fn(x_t, t)`` is called with the code timestep array ``t`` (B,).  Returns ``total_bpd`` (B,),
    ``prior_bpd`` (B,) and per-t ``vb``, ``xstart_mse`` (x̂_0 vs x_0) and ``mse`` (ε̂ vs the noise),
    each (B, T).
    """
    x0 = as_float64(x_start, "x_start")
    if x0.ndim < 1:
        raise ValueError(f"x_start: expected shape (B, ...), got {x0.shape}")
    noise_arr = as_float64(noises, "noises")
    expected = (tab.num_timesteps, *x0.shape)
    if noise_arr.shape != expected:
        raise ValueError(f"noises: expected shape {expected} (T, *x_start.shape), got {noise_arr.shape}")
    batch = x0.shape[0]
    vb = np.zeros((batch, tab.num_timesteps))
    xstart_mse = np.zeros((batch, tab.num_timesteps))
    eps_mse = np.zeros((batch, tab.num_timesteps))
    for step in range(tab.num_timesteps):
        t_batch = np.full(batch, step, dtype=np.int64)
        x_t = q_sample(tab, x0, t_batch, noise_arr[step])
        terms = vb_term_bpd(
            tab,
            model_fn(x_t, t_batch),
            x0,
            x_t,
            t_batch,
            model_mean_type=model_mean_type,
            model_var_type=model_var_type,
            clip_denoised=clip_denoised,
        )
        vb[:, step] = terms["output"]
        xstart_mse[:, step] = mean_over_non_batch((terms["pred_xstart"] - x0) ** 2)
        eps = predict_eps_from_xstart(tab, x_t, t_batch, terms["pred_xstart"])
        eps_mse[:, step] = mean_over_non_batch((eps - noise_arr[step]) ** 2)
    prior = prior_bpd(tab, x0)
    return {
        "total_bpd": vb.sum(axis=1) + prior,
        "prior_bpd": prior,
        "vb": vb,
        "xstart_mse": xstart_mse,
        "mse": eps_mse,
    }


def mse_target(
    tab: DiffusionTables,
    x_start: FloatArray,
    x_t: FloatArray,
    t: IntArray,
    noise: FloatArray,
    model_mean_type: str,
) -> FloatArray:
    """The L_simple target by mean type: ε (EPSILON), x_0 (START_X), μ̃_t(x_0, x_t) (PREVIOUS_X) [S21],
    v (VELOCITY) [S40]."""
    if model_mean_type == "PREVIOUS_X":
        return q_posterior_mean_variance(tab, x_start, x_t, t)[0]
    if model_mean_type == "START_X":
        return x_start
    if model_mean_type == "VELOCITY":
        return velocity(tab, x_start, t, noise)
    return noise


def signal_to_noise_ratio(tab: DiffusionTables, t: ArrayLike) -> FloatArray:
    """SNR_t = ᾱ_t / (1 − ᾱ_t) [S42], shape (B,)."""
    t_arr = check_timesteps(t, tab.num_timesteps)
    abar = tab.alphas_cumprod[t_arr]
    return abar / (1.0 - abar)


def min_snr_weight(snr: ArrayLike, gamma: float, model_mean_type: str) -> FloatArray:
    """Min-SNR-γ weight of the MSE term [S43] (Hang et al. 2023): min(SNR_t, γ)/SNR_t for EPSILON,
    min(SNR_t, γ) for START_X, min(SNR_t, γ)/(SNR_t + 1) for VELOCITY."""
    s = as_float64(snr, "snr")
    if not gamma > 0.0:
        raise ValueError(f"min_snr_gamma must be > 0, got {gamma}")
    clipped = np.minimum(s, gamma)
    if model_mean_type == "EPSILON":
        return clipped / s
    if model_mean_type == "START_X":
        return clipped
    if model_mean_type == "VELOCITY":
        return clipped / (s + 1.0)
    raise ValueError(
        f"model_mean_type {model_mean_type!r} has no min-SNR weight; allowed: EPSILON, START_X, VELOCITY"
    )


def hybrid_vlb_factor(vlb_weight: float, num_timesteps: int) -> float:
    """λ·T, the factor of L_t in L_hybrid = L_simple + λ·L_vlb with L_vlb ≈ T·E_t[L_t] [S44].

    λ = 1e-3 is the paper's L_hybrid (RESCALED_MSE: T/1000), λ = 1/T weighs L_t by 1 (MSE).
    """
    if not vlb_weight >= 0.0 or not math.isfinite(vlb_weight):
        raise ValueError(f"vlb_weight must be a finite number >= 0, got {vlb_weight}")
    return vlb_weight * num_timesteps


def training_losses(
    tab: DiffusionTables,
    model_output: ArrayLike,
    x_start: ArrayLike,
    t: ArrayLike,
    noise: ArrayLike,
    *,
    model_mean_type: str,
    model_var_type: str,
    loss_type: str,
    loss_weighting: str = "none",
    min_snr_gamma: float = 5.0,
    vlb_weight: float | None = None,
) -> dict[str, FloatArray]:
    """Per-sample loss: KL = L_t, RESCALED_KL = T·L_t [S23]; MSE / RESCALED_MSE = L_simple [S21]
    (+ w·L_t with w = 1 or T/1000 when the variance is learned [S22]).

    ``loss_weighting="min_snr"`` multiplies the MSE term by [S43]; ``vlb_weight`` λ replaces w by λ·T
    [S44].

    ``model_output`` is the net's output at x_t = q_sample(x_0, t, noise).  The VLB term uses
    ``clip_denoised=False``; the stop-gradient of [S22] has no effect on values.  Keys: ``loss`` and, for the
    MSE types, ``mse`` and (learned variance only) ``vb`` (already weighted), each (B,).
    """
    check_choice(model_mean_type, "model_mean_type", MEAN_TYPES)
    check_choice(model_var_type, "model_var_type", VAR_TYPES)
    check_choice(loss_type, "loss_type", LOSS_TYPES)
    x0 = as_float64(x_start, "x_start")
    t_arr = check_timesteps(t, tab.num_timesteps)
    check_batch(x0, "x_start", t_arr)
    eps = as_float64(noise, "noise")
    check_same_shape(eps, "noise", x0, "x_start")
    x_t = q_sample(tab, x0, t_arr, eps)

    def vlb_term() -> FloatArray:
        return vb_term_bpd(
            tab,
            model_output,
            x0,
            x_t,
            t_arr,
            model_mean_type=model_mean_type,
            model_var_type=model_var_type,
            clip_denoised=False,
        )["output"]

    if loss_type in ("KL", "RESCALED_KL"):
        vb = vlb_term()
        return {"loss": vb * tab.num_timesteps if loss_type == "RESCALED_KL" else vb}
    mean_part, _ = split_model_output(model_output, x_t, model_var_type)
    terms: dict[str, FloatArray] = {}
    terms["mse"] = mean_over_non_batch(
        (mse_target(tab, x0, x_t, t_arr, eps, model_mean_type) - mean_part) ** 2
    )
    check_choice(loss_weighting, "loss_weighting", LOSS_WEIGHTINGS)
    if loss_weighting == "min_snr":
        snr = signal_to_noise_ratio(tab, t_arr)
        terms["mse"] = terms["mse"] * min_snr_weight(snr, min_snr_gamma, model_mean_type)
    if model_var_type in LEARNED_VAR_TYPES:
        vb = vlb_term()
        if vlb_weight is not None:
            vb = vb * hybrid_vlb_factor(vlb_weight, tab.num_timesteps)
        elif loss_type == "RESCALED_MSE":
            vb = vb * (tab.num_timesteps / HYBRID_LAMBDA_STEPS)
        terms["vb"] = vb
        terms["loss"] = terms["mse"] + vb
    else:
        terms["loss"] = terms["mse"]
    return terms
