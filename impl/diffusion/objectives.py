"""Variational-bound terms [S18]–[S19] and the training objectives [S21]–[S23] on tensors.

Pure functions of the model output; `GaussianDiffusion` runs the network and calls them.
"""

from __future__ import annotations

import math

import torch

from impl.diffusion.enums import LOSS_WEIGHTINGS, LossType, ModelMeanType, ModelVarType
from impl.diffusion.gaussian import discretized_gaussian_log_likelihood, mean_flat, normal_kl
from impl.diffusion.process import (
    gather,
    is_learned,
    p_mean_variance,
    q_mean_variance,
    q_posterior_mean_variance,
    split_model_output,
    velocity,
)
from impl.diffusion.schedule import TorchTables

__all__ = [
    "check_objective_options",
    "hybrid_vlb_factor",
    "min_snr_weight",
    "prior_bpd",
    "signal_to_noise_ratio",
    "training_losses",
    "vb_term_bpd",
]

_LN2 = math.log(2.0)


def vb_term_bpd(
    tab: TorchTables,
    model_output: torch.Tensor,
    x_start: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    *,
    model_mean_type: ModelMeanType,
    model_var_type: ModelVarType,
    clip_denoised: bool = True,
) -> dict[str, torch.Tensor]:
    """L_{t−1} = mean KL(q posterior ‖ p_θ)/ln 2 for t > 0, L_0 = −mean log p(x_0|x_1)/ln 2 at t = 0 [S18].

    Returns `output` (B,) in bits/dim and `pred_xstart`.
    """
    true_mean, _, true_log_var = q_posterior_mean_variance(tab, x_start, x_t, t)
    out = p_mean_variance(
        tab,
        model_output,
        x_t,
        t,
        model_mean_type=model_mean_type,
        model_var_type=model_var_type,
        clip_denoised=clip_denoised,
    )
    kl = mean_flat(normal_kl(true_mean, true_log_var, out["mean"], out["log_variance"])) / _LN2
    log_likelihood = discretized_gaussian_log_likelihood(
        x_start, means=out["mean"], log_scales=0.5 * out["log_variance"]
    )
    decoder_nll = -mean_flat(log_likelihood) / _LN2
    output = torch.where(t.to(kl.device) == 0, decoder_nll, kl)
    return {"output": output, "pred_xstart": out["pred_xstart"]}


def prior_bpd(tab: TorchTables, x_start: torch.Tensor) -> torch.Tensor:
    """L_T = mean KL(q(x_T|x_0) ‖ N(0, I))/ln 2 [S19], shape (B,)."""
    last = torch.full((x_start.shape[0],), tab.num_timesteps - 1, dtype=torch.long, device=x_start.device)
    mean, _, log_var = q_mean_variance(tab, x_start, last)
    zero = torch.zeros((), dtype=mean.dtype, device=mean.device)
    return mean_flat(normal_kl(mean, log_var, zero, zero)) / _LN2


def _mse_target(
    tab: TorchTables,
    model_mean_type: ModelMeanType,
    x_start: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    if model_mean_type is ModelMeanType.PREVIOUS_X:
        return q_posterior_mean_variance(tab, x_start, x_t, t)[0]
    if model_mean_type is ModelMeanType.START_X:
        return x_start
    if model_mean_type is ModelMeanType.EPSILON:
        return noise
    if model_mean_type is ModelMeanType.VELOCITY:
        return velocity(tab, x_start, t, noise)
    raise ValueError(f"model_mean_type must be a ModelMeanType, got {model_mean_type!r}")


def signal_to_noise_ratio(tab: TorchTables, t: torch.Tensor) -> torch.Tensor:
    """SNR_t = ᾱ_t/(1 − ᾱ_t) [S42], (B,), as (√ᾱ_t / √(1 − ᾱ_t))² of the float64-built tables (1 − ᾱ_t
    formed in float32 would lose its digits near t = 0)."""
    ratio = gather(tab.sqrt_alphas_cumprod, t, 1) / gather(tab.sqrt_one_minus_alphas_cumprod, t, 1)
    return ratio * ratio


def min_snr_weight(snr: torch.Tensor, gamma: float, model_mean_type: ModelMeanType) -> torch.Tensor:
    """Min-SNR-γ weight of the MSE term [S43]: min(SNR, γ)/SNR (EPSILON), min(SNR, γ) (START_X),
    min(SNR, γ)/(SNR + 1) (VELOCITY)."""
    check_min_snr_gamma(gamma)
    clipped = snr.clamp(max=gamma)
    if model_mean_type is ModelMeanType.EPSILON:
        return clipped / snr
    if model_mean_type is ModelMeanType.START_X:
        return clipped
    if model_mean_type is ModelMeanType.VELOCITY:
        return clipped / (snr + 1.0)
    raise ValueError(
        f"loss_weighting 'min_snr' is defined for the EPSILON, START_X and VELOCITY mean types, "
        f"got {model_mean_type.name}"
    )


def check_objective_options(
    model_mean_type: ModelMeanType,
    model_var_type: ModelVarType,
    loss_type: LossType,
    loss_weighting: str,
    min_snr_gamma: float,
    vlb_weight: float | None,
) -> None:
    """ValueError naming the option when the loss weighting or the VLB weight cannot apply."""
    if loss_weighting not in LOSS_WEIGHTINGS:
        raise ValueError(
            f"loss_weighting must be one of {', '.join(LOSS_WEIGHTINGS)}, got {loss_weighting!r}"
        )
    check_min_snr_gamma(min_snr_gamma)
    if loss_weighting == "min_snr" and (loss_type.is_vb() or model_mean_type is ModelMeanType.PREVIOUS_X):
        raise ValueError(
            "loss_weighting 'min_snr' weighs the MSE term of an EPSILON, START_X or VELOCITY model; "
            f"got {model_mean_type.name} with loss {loss_type.name}"
        )
    if vlb_weight is not None:
        hybrid_vlb_factor(vlb_weight, 1)  # checks the value
        if loss_type.is_vb() or model_var_type not in (ModelVarType.LEARNED, ModelVarType.LEARNED_RANGE):
            raise ValueError(
                "vlb_weight weighs the VLB term of L_hybrid: it needs a learned variance (learn_sigma) "
                f"and an MSE loss (not use_kl); got {model_var_type.name} with loss {loss_type.name}"
            )


def check_min_snr_gamma(gamma: float) -> float:
    if not (isinstance(gamma, int | float) and math.isfinite(gamma) and gamma > 0.0):
        raise ValueError(f"min_snr_gamma must be a finite number > 0, got {gamma!r}")
    return float(gamma)


def hybrid_vlb_factor(vlb_weight: float, num_timesteps: int) -> float:
    """λ·T, the factor of L_t in L_hybrid = L_simple + λ·L_vlb with L_vlb ≈ T·E_t[L_t] [S44].

    A λ that is the float reciprocal of an integer n (λ == 1.0/n: 1e-3, 1/T, 5e-4, …) is taken as exactly
    1/n, so the factor is T/n rounded once: λ = 1e-3 gives the T/1000 of RESCALED_MSE and λ = 1/T gives
    1.0 (MSE) bit for bit, where λ·T would differ from them in the last bit for many T.
    """
    if not (isinstance(vlb_weight, int | float) and math.isfinite(vlb_weight) and vlb_weight >= 0.0):
        raise ValueError(f"vlb_weight must be a finite number >= 0, got {vlb_weight!r}")
    if vlb_weight > 0.0:
        n = round(1.0 / vlb_weight)
        if n >= 1 and 1.0 / n == vlb_weight:
            return num_timesteps / n
    return float(vlb_weight) * num_timesteps


def training_losses(
    tab: TorchTables,
    model_output: torch.Tensor,
    x_start: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    *,
    model_mean_type: ModelMeanType,
    model_var_type: ModelVarType,
    loss_type: LossType,
    loss_weighting: str = "none",
    min_snr_gamma: float = 5.0,
    vlb_weight: float | None = None,
) -> dict[str, torch.Tensor]:
    """Per-sample losses [S21]–[S23] for `model_output` evaluated at x_t = q_sample(x_start, t, noise).

    `x_t` is the caller's q_sample (the one the network saw), so it is computed once per loss.
    `loss_weighting="min_snr"` multiplies `mse` by the min-SNR-γ weight [S43] (the returned `mse` is the
    weighted term); `vlb_weight` λ makes the VLB factor λ·T [S44] in place of the loss type's 1 or T/1000.

    KL/RESCALED_KL: `loss` = L_t (times T when rescaled).  MSE/RESCALED_MSE: `mse` = L_simple and, with a
    learned variance, `vb` = L_t (times T/1000 when rescaled) computed with the mean channels detached, so
    the bound trains only the variance [S22]; `loss` = mse (+ vb).
    """
    terms: dict[str, torch.Tensor] = {}
    if loss_type.is_vb():
        vb = vb_term_bpd(
            tab,
            model_output,
            x_start,
            x_t,
            t,
            model_mean_type=model_mean_type,
            model_var_type=model_var_type,
            clip_denoised=False,
        )["output"]
        terms["loss"] = vb * tab.num_timesteps if loss_type is LossType.RESCALED_KL else vb
        return terms
    if loss_type not in (LossType.MSE, LossType.RESCALED_MSE):
        raise ValueError(f"loss_type must be a LossType, got {loss_type!r}")
    mean_part, var_part = split_model_output(model_output, x_t, model_var_type)
    if is_learned(model_var_type) and var_part is not None:
        frozen = torch.cat([mean_part.detach(), var_part], dim=1)
        vb = vb_term_bpd(
            tab,
            frozen,
            x_start,
            x_t,
            t,
            model_mean_type=model_mean_type,
            model_var_type=model_var_type,
            clip_denoised=False,
        )["output"]
        if vlb_weight is not None:
            terms["vb"] = vb * hybrid_vlb_factor(vlb_weight, tab.num_timesteps)
        else:
            terms["vb"] = vb * (tab.num_timesteps / 1000.0) if loss_type is LossType.RESCALED_MSE else vb
    target = _mse_target(tab, model_mean_type, x_start, x_t, t, noise)
    terms["mse"] = mean_flat((target - mean_part) ** 2)
    if loss_weighting == "min_snr":
        terms["mse"] = terms["mse"] * min_snr_weight(
            signal_to_noise_ratio(tab, t), min_snr_gamma, model_mean_type
        )
    elif loss_weighting != "none":
        raise ValueError(
            f"loss_weighting must be one of {', '.join(LOSS_WEIGHTINGS)}, got {loss_weighting!r}"
        )
    terms["loss"] = terms["mse"] + terms["vb"] if "vb" in terms else terms["mse"]
    return terms
