"""Variational-bound terms [S18]–[S19] and the training objectives [S21]–[S23] on tensors.

Pure functions of the model output; `GaussianDiffusion` runs the network and calls them.
"""

from __future__ import annotations

import math

import torch

from impl.diffusion.enums import LossType, ModelMeanType, ModelVarType
from impl.diffusion.gaussian import discretized_gaussian_log_likelihood, mean_flat, normal_kl
from impl.diffusion.process import (
    is_learned,
    p_mean_variance,
    q_mean_variance,
    q_posterior_mean_variance,
    split_model_output,
)
from impl.diffusion.schedule import TorchTables

__all__ = ["prior_bpd", "training_losses", "vb_term_bpd"]

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
    raise ValueError(f"model_mean_type must be a ModelMeanType, got {model_mean_type!r}")


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
) -> dict[str, torch.Tensor]:
    """Per-sample losses [S21]–[S23] for `model_output` evaluated at x_t = q_sample(x_start, t, noise).

    `x_t` is the caller's q_sample (the one the network saw), so it is computed once per loss.
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
        terms["vb"] = vb * (tab.num_timesteps / 1000.0) if loss_type is LossType.RESCALED_MSE else vb
    target = _mse_target(tab, model_mean_type, x_start, x_t, t, noise)
    terms["mse"] = mean_flat((target - mean_part) ** 2)
    terms["loss"] = terms["mse"] + terms["vb"] if "vb" in terms else terms["mse"]
    return terms
