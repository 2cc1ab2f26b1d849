"""Rounding magnitudes that input perturbation cannot see: cancellation against constants.

`properties.compare.reference_sensitivity` measures how input and table errors are amplified.  Two
formulas also cancel against exact constants, where an op's own rounding (eps of an O(1) intermediate)
dominates: the KL's −1 + e^{lv1−lv2} − lv1 + lv2 [S15] and the CDF's ½(1 + tanh(…)) [S16], which the
log of [S17] turns into a relative error eps/(its argument).  These functions return those magnitudes
(to be multiplied by the op-count rtol), computed with the reference in float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reference.gaussian import approx_standard_normal_cdf
from reference.process import p_mean_variance, q_posterior_mean_variance
from reference.schedule import DiffusionTables

FloatArray = NDArray[np.float64]
LN2 = math.log(2.0)
_BIN = 1.0 / 255.0
_FLOOR = 1e-12


def mean_flat(array: FloatArray) -> FloatArray:
    """Mean over all axes but the first."""
    return np.asarray(array.reshape(array.shape[0], -1).mean(axis=1), dtype=np.float64)


def kl_terms(logvar1: FloatArray, logvar2: FloatArray) -> FloatArray:
    """½(1 + |lv1| + |lv2| + e^{lv1−lv2}): the terms of [S15] that cancel to a small KL."""
    return np.asarray(0.5 * (1.0 + np.abs(logvar1) + np.abs(logvar2) + np.exp(logvar1 - logvar2)))


def cdf_terms(x: FloatArray) -> FloatArray:
    """½(1 + |tanh|) <= 1: [S16] adds 1 to tanh, so its absolute rounding is eps·1 however small Φ is."""
    return np.ones(np.shape(x))


def log_likelihood_terms(x: FloatArray, means: FloatArray, log_scales: FloatArray) -> FloatArray:
    """2/max(arg, 1e-12), arg the bin probability of [S17]: each CDF carries eps·1 absolute rounding."""
    inv_sigma = np.exp(-log_scales)
    centred = x - means
    upper = approx_standard_normal_cdf((centred + _BIN) * inv_sigma)
    lower = approx_standard_normal_cdf((centred - _BIN) * inv_sigma)
    arg = np.where(x < -0.999, upper, np.where(x > 0.999, 1.0 - lower, upper - lower))
    return np.asarray(2.0 / np.maximum(arg, _FLOOR))


def vb_terms(
    tab: DiffusionTables,
    model_output: FloatArray,
    x_start: FloatArray,
    x_t: FloatArray,
    t: NDArray[np.int64],
    mean_type: str,
    var_type: str,
    clip_denoised: bool,
) -> FloatArray:
    """Per-sample rounding magnitude of the VLB term [S18] in bits/dim: KL terms for t > 0, decoder at 0."""
    _, _, true_log_var = q_posterior_mean_variance(tab, x_start, x_t, t)
    out = p_mean_variance(
        tab,
        model_output,
        x_t,
        t,
        model_mean_type=mean_type,
        model_var_type=var_type,
        clip_denoised=clip_denoised,
    )
    kl = mean_flat(kl_terms(np.asarray(true_log_var), np.asarray(out["log_variance"]))) / LN2
    decoder = (
        mean_flat(
            log_likelihood_terms(x_start, np.asarray(out["mean"]), 0.5 * np.asarray(out["log_variance"]))
        )
        / LN2
    )
    return np.asarray(np.where(np.asarray(t) == 0, decoder, kl))


def prior_terms(tab: DiffusionTables, x_start: FloatArray) -> FloatArray:
    """Per-sample rounding magnitude of the prior term [S19]: the KL terms against N(0, 1)."""
    log_var = np.asarray(tab.log_one_minus_alphas_cumprod)[-1]
    return mean_flat(kl_terms(np.full(x_start.shape, log_var), np.zeros(x_start.shape))) / LN2


def guided_xstart_terms(
    tab: DiffusionTables, out: dict[str, Any], x_t: FloatArray, t: NDArray[np.int64], grad: FloatArray
) -> FloatArray:
    """√(1/ᾱ)|x_t| + √(1/ᾱ − 1)(|ε̂| + √(1 − ᾱ)|g|): the terms of the score-guided x̂_0 (SPEC §7) that cancel.

    condition_score goes x̂_0 → ε̂ [S9] → ε̂ − √(1 − ᾱ)·g → x̂_0' [S9].  A perturbation of x_t enters both
    √(1/ᾱ)·x_t and ε̂ and cancels, so input perturbation cannot see the rounding of the intermediate ε̂ and of
    the two products, each amplified by √(1/ᾱ − 1) (~32 at ᾱ = 0.001, cosine T = 1).
    """
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    abar = np.asarray(tab.alphas_cumprod)[t].reshape(shape)
    recip, recipm1 = np.sqrt(1.0 / abar), np.sqrt(1.0 / abar - 1.0)
    eps = (recip * x_t - np.asarray(out["pred_xstart"])) / recipm1
    return np.asarray(recip * np.abs(x_t) + recipm1 * (np.abs(eps) + np.sqrt(1.0 - abar) * np.abs(grad)))


def ddim_noise_coef_terms(
    tab: DiffusionTables, out: dict[str, Any], x_t: FloatArray, t: NDArray[np.int64], eta: float
) -> FloatArray:
    """|ε̂|·(1 + ᾱ_prev + σ²)/(2√c), c = 1 − ᾱ_prev − σ²: the cancelling coefficient of the DDIM step [S30].

    σ² is an intermediate result; c cancels against it (c → 0 as η → 1 at t = T − 1), so c's absolute
    rounding, eps·(1 + ᾱ_prev + σ²), becomes a relative error of that over c, halved by the square root,
    multiplying ε̂.  Input perturbation only sees the rounding of the tables, not of σ².
    """
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    abar = np.asarray(tab.alphas_cumprod)[t].reshape(shape)
    abar_prev = np.asarray(tab.alphas_cumprod_prev)[t].reshape(shape)
    sigma_sq = eta**2 * (1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev)
    coef = 1.0 - abar_prev - sigma_sq
    eps = (np.sqrt(1.0 / abar) * x_t - np.asarray(out["pred_xstart"])) / np.sqrt(1.0 / abar - 1.0)
    safe = np.where(coef > 0.0, coef, 1.0)
    terms = np.abs(eps) * (1.0 + abar_prev + sigma_sq) / (2.0 * np.sqrt(safe))
    return np.asarray(np.where(coef > 0.0, terms, 0.0))


def eps_from_xstart_terms(
    tab: DiffusionTables, out: dict[str, Any], x_t: FloatArray, t: NDArray[np.int64]
) -> FloatArray:
    """(√(1/ᾱ)|x_t| + |x̂_0|)/√(1/ᾱ − 1): rounding of ε̂ recomputed from x̂_0 [S9] in the DDIM steps.

    x̂_0 is an intermediate (itself from x_t and the net output); ε̂ = (√(1/ᾱ)x_t − x̂_0)/√(1/ᾱ − 1) cancels
    it against x_t, so a perturbation of x_t cancels too and only x̂_0's own rounding is left, divided by
    √(1/ᾱ − 1) (~0.01 at t = 0 of the linear schedule: a 100× amplification).
    """
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    abar = np.asarray(tab.alphas_cumprod)[t].reshape(shape)
    recip, recipm1 = np.sqrt(1.0 / abar), np.sqrt(1.0 / abar - 1.0)
    return np.asarray((recip * np.abs(x_t) + np.abs(np.asarray(out["pred_xstart"]))) / recipm1)
