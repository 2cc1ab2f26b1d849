"""One reverse step on tensors: ancestral [S29], DDIM [S30], DDIM inversion [S31], guidance (SPEC §7).

`out` is a `p_mean_variance` dict.  The "t > 0" switch is a tensor mask, never a Python branch on values.
"""

from __future__ import annotations

import math

import torch

from impl.diffusion.process import (
    gather,
    predict_eps_from_xstart,
    predict_xstart_from_eps,
    q_posterior_mean_variance,
)
from impl.diffusion.schedule import TorchTables

__all__ = [
    "check_eta",
    "condition_mean",
    "condition_score",
    "ddim_reverse_step",
    "ddim_step",
    "nonzero_mask",
    "p_sample_step",
]


def nonzero_mask(t: torch.Tensor, ndim: int, dtype: torch.dtype) -> torch.Tensor:
    """1[t > 0] shaped (B, 1, ..., 1): no noise is added on the last step (t = 0)."""
    return (t != 0).to(dtype).reshape(t.shape[0], *([1] * (ndim - 1)))


def p_sample_step(out: dict[str, torch.Tensor], t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_{t−1} = μ_θ + 1[t>0]·e^{½ log Σ}·z [S29]."""
    mean = out["mean"]
    mask = nonzero_mask(t, mean.ndim, mean.dtype)
    return mean + mask * torch.exp(0.5 * out["log_variance"]) * noise


def check_eta(eta: float) -> float:
    """``eta`` as a float if it is a finite number >= 0 (η of DDIM [S30]: 0 deterministic, 1 DDPM-like
    noise), else a ValueError naming ``eta``; a negative η would flip the sign of the noise term."""
    if isinstance(eta, bool) or not isinstance(eta, int | float) or not math.isfinite(eta) or eta < 0:
        raise ValueError(f"eta must be a finite number >= 0 (0: deterministic DDIM), got {eta!r}")
    return float(eta)


def check_temperature(value: float, name: str = "temperature") -> float:
    """``value`` as a float if it is a finite number > 0 (a noise temperature [S45], [S46]), else a
    ValueError naming ``name``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number > 0 (1: untempered sampling), got {value!r}")
    return float(value)


def ddim_sigma(tab: TorchTables, t: torch.Tensor, ndim: int, eta: float) -> torch.Tensor:
    """σ = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev) [S30]."""
    abar = gather(tab.alphas_cumprod, t, ndim)
    abar_prev = gather(tab.alphas_cumprod_prev, t, ndim)
    return eta * torch.sqrt((1.0 - abar_prev) / (1.0 - abar)) * torch.sqrt(1.0 - abar / abar_prev)


def ddim_step(
    tab: TorchTables,
    out: dict[str, torch.Tensor],
    x_t: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    eta: float,
) -> torch.Tensor:
    """x_{t−1} = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε̂ + 1[t>0] σ z [S30].

    1 − ᾱ_prev − σ² >= 0 in exact arithmetic but cancels to ~0 at η = 1, t = T − 1, where rounding can
    make it slightly negative: it is clamped at 0 (as in the reference) so the step never returns NaN.
    """
    n = x_t.ndim
    pred_xstart = out["pred_xstart"]
    eps = predict_eps_from_xstart(tab, x_t, t, pred_xstart)
    abar_prev = gather(tab.alphas_cumprod_prev, t, n)
    sigma = ddim_sigma(tab, t, n, eta)
    direction = torch.sqrt((1.0 - abar_prev - sigma**2).clamp(min=0.0)) * eps
    mask = nonzero_mask(t, n, x_t.dtype)
    return torch.sqrt(abar_prev) * pred_xstart + direction + mask * sigma * noise


def ddim_reverse_step(
    tab: TorchTables, out: dict[str, torch.Tensor], x_t: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """x_{t+1} = √ᾱ_next x̂_0 + √(1 − ᾱ_next) ε̂, the net evaluated at t [S31]."""
    n = x_t.ndim
    pred_xstart = out["pred_xstart"]
    eps = predict_eps_from_xstart(tab, x_t, t, pred_xstart)
    abar_next = gather(tab.alphas_cumprod_next, t, n)
    return torch.sqrt(abar_next) * pred_xstart + torch.sqrt(1.0 - abar_next) * eps


def condition_mean(out: dict[str, torch.Tensor], grad: torch.Tensor) -> torch.Tensor:
    """Guided ancestral mean μ + Σ·g with g = ∇_x log p(y|x_t) (SPEC §7)."""
    return out["mean"] + out["variance"] * grad


def condition_score(
    tab: TorchTables, out: dict[str, torch.Tensor], x_t: torch.Tensor, t: torch.Tensor, grad: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Guided score ε̂ − √(1 − ᾱ_t)·g, then x̂_0 and μ̃ recomputed from it (SPEC §7); variance unchanged."""
    eps = predict_eps_from_xstart(tab, x_t, t, out["pred_xstart"])
    eps = eps - gather(tab.sqrt_one_minus_alphas_cumprod, t, x_t.ndim) * grad
    pred_xstart = predict_xstart_from_eps(tab, x_t, t, eps)
    mean = q_posterior_mean_variance(tab, pred_xstart, x_t, t)[0]
    return {**out, "pred_xstart": pred_xstart, "mean": mean}
