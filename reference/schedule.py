"""Noise schedules and the tables derived from them ([S1]–[S4], [S7]–[S8]), in float64."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import overload

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import FloatArray, as_float64, check_choice, check_positive_int

SCHEDULE_NAMES: tuple[str, ...] = ("linear", "cosine")
COSINE_OFFSET = 0.008
MAX_BETA = 0.999
# The last linear beta is 20/T: T = 20 gives β = 1, so ᾱ_{T-1} = 0 and L_vb and samples are NaN; the
# smallest T whose last beta is below 1 is 21.
LINEAR_MIN_T = 21


def linear_beta_schedule(T: int) -> FloatArray:
    """β = linspace(scale·1e-4, scale·0.02, T) with scale = 1000/T [S1].

    The last beta is 20/T: T < 20 gives β > 1, and T = 20 gives β = 1, so ᾱ_{T-1} = 0 and the prior term,
    L_vb and every sample are NaN.  Both are rejected: T must be at least ``LINEAR_MIN_T`` = 21.
    """
    T = check_positive_int(T, "T")
    if T < LINEAR_MIN_T:
        raise ValueError(
            f"T: the linear schedule needs T >= {LINEAR_MIN_T} "
            f"(its last beta is 20/T = {20 / T:.3g}, which must be below 1), got {T}"
        )
    scale = 1000.0 / T
    return np.linspace(scale * 1e-4, scale * 0.02, T, dtype=np.float64)


@overload
def cosine_alpha_bar(tau: float) -> float: ...
@overload
def cosine_alpha_bar(tau: FloatArray) -> FloatArray: ...
def cosine_alpha_bar(tau: float | FloatArray) -> float | FloatArray:
    """ᾱ(τ) = cos(((τ + s)/(1 + s))·π/2)², s = 0.008 [S3]."""
    if isinstance(tau, np.ndarray):
        angle = (as_float64(tau, "tau") + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * (math.pi / 2.0)
        result: FloatArray = np.cos(angle) ** 2
        return result
    return math.cos((float(tau) + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * (math.pi / 2.0)) ** 2


def betas_for_alpha_bar(
    T: int, alpha_bar: Callable[[float], float], max_beta: float = MAX_BETA
) -> FloatArray:
    """β_i = min(1 − ᾱ((i+1)/T) / ᾱ(i/T), max_beta) for i = 0..T−1 [S2]."""
    T = check_positive_int(T, "T")
    if not 0.0 < max_beta <= 1.0:
        raise ValueError(f"max_beta: expected a value in (0, 1], got {max_beta!r}")
    betas = [min(1.0 - float(alpha_bar((i + 1) / T)) / float(alpha_bar(i / T)), max_beta) for i in range(T)]
    return np.asarray(betas, dtype=np.float64)


def get_named_beta_schedule(name: str, T: int) -> FloatArray:
    """β for a named schedule: "linear" [S1] or "cosine" [S2]+[S3]."""
    check_choice(name, "name", SCHEDULE_NAMES)
    if name == "linear":
        return linear_beta_schedule(T)
    return betas_for_alpha_bar(T, cosine_alpha_bar)


@dataclass(frozen=True)
class DiffusionTables:
    """Every per-timestep table of the process, float64, shape (T,), read-only ([S4], [S5], [S7]–[S9]).

    ``posterior_log_variance_clipped`` is log β̃ with its t = 0 entry (where β̃_0 = 0) replaced by log β̃_1 [S8].
    For T = 1 there is no β̃_1; the single entry is then log β_0 instead (the variance of the only reverse step
    under FIXED_LARGE), so FIXED_SMALL, FIXED_LARGE and LEARNED_RANGE are all finite and coincide at T = 1.
    """

    betas: FloatArray
    alphas: FloatArray
    alphas_cumprod: FloatArray
    alphas_cumprod_prev: FloatArray
    alphas_cumprod_next: FloatArray
    sqrt_alphas_cumprod: FloatArray
    sqrt_one_minus_alphas_cumprod: FloatArray
    log_one_minus_alphas_cumprod: FloatArray
    sqrt_recip_alphas_cumprod: FloatArray
    sqrt_recipm1_alphas_cumprod: FloatArray
    posterior_variance: FloatArray
    posterior_log_variance_clipped: FloatArray
    posterior_mean_coef1: FloatArray
    posterior_mean_coef2: FloatArray

    @property
    def num_timesteps(self) -> int:
        """T, the number of diffusion steps."""
        return int(self.betas.shape[0])


def clipped_log_posterior_variance(betas: FloatArray, posterior_variance: FloatArray) -> FloatArray:
    """log β̃ with the t = 0 entry replaced by log β̃_1 (log β_0 when T = 1) [S8]."""
    first = posterior_variance[1] if posterior_variance.shape[0] > 1 else betas[0]
    logs: FloatArray = np.log(np.append(first, posterior_variance[1:]))
    return logs


def _check_betas(betas: ArrayLike) -> FloatArray:
    arr = as_float64(betas, "betas")
    if arr.ndim != 1 or arr.shape[0] < 1:
        raise ValueError(f"betas: expected a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0.0) or np.any(arr > 1.0):
        raise ValueError("betas: every beta must be finite and lie in (0, 1]")
    return arr


def _read_only(x: FloatArray) -> FloatArray:
    out = np.array(x, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


def diffusion_tables(betas: ArrayLike) -> DiffusionTables:
    """All derived tables from β: α = 1 − β, ᾱ, ᾱ_prev, ᾱ_next [S4]; [S5]; [S7]; [S8]; [S9]."""
    betas_arr = _check_betas(betas)
    alphas = 1.0 - betas_arr
    alphas_cumprod: FloatArray = np.cumprod(alphas, dtype=np.float64)
    alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
    alphas_cumprod_next = np.append(alphas_cumprod[1:], 0.0)
    posterior_variance = betas_arr * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    with np.errstate(divide="ignore"):
        # A beta of exactly 1 (linear schedule at T = 20) makes ᾱ = 0 and these tables infinite there.
        log_one_minus_alphas_cumprod = np.log(1.0 - alphas_cumprod)
        sqrt_recip_alphas_cumprod = np.sqrt(1.0 / alphas_cumprod)
        sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / alphas_cumprod - 1.0)
    return DiffusionTables(
        betas=_read_only(betas_arr),
        alphas=_read_only(alphas),
        alphas_cumprod=_read_only(alphas_cumprod),
        alphas_cumprod_prev=_read_only(alphas_cumprod_prev),
        alphas_cumprod_next=_read_only(alphas_cumprod_next),
        sqrt_alphas_cumprod=_read_only(np.sqrt(alphas_cumprod)),
        sqrt_one_minus_alphas_cumprod=_read_only(np.sqrt(1.0 - alphas_cumprod)),
        log_one_minus_alphas_cumprod=_read_only(log_one_minus_alphas_cumprod),
        sqrt_recip_alphas_cumprod=_read_only(sqrt_recip_alphas_cumprod),
        sqrt_recipm1_alphas_cumprod=_read_only(sqrt_recipm1_alphas_cumprod),
        posterior_variance=_read_only(posterior_variance),
        posterior_log_variance_clipped=_read_only(
            clipped_log_posterior_variance(betas_arr, posterior_variance)
        ),
        posterior_mean_coef1=_read_only(betas_arr * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod)),
        posterior_mean_coef2=_read_only(
            (1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - alphas_cumprod)
        ),
    )
