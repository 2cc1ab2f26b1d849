"""Forward process, posterior and reverse-process mean/variance on tensors ([S5]–[S14]).

Pure functions of a `TorchTables` and tensors; `GaussianDiffusion` calls them with the model output.
Timestep-indexed table values are gathered at `t` (a (B,) int64 tensor on the tables' device) and
broadcast over the trailing axes, so nothing here synchronises with the host.
"""

from __future__ import annotations

import torch

from impl.diffusion.enums import ModelMeanType, ModelVarType
from impl.diffusion.schedule import TorchTables
from impl.diffusion.types import DenoisedFn

__all__ = [
    "check_timesteps",
    "gather",
    "is_learned",
    "model_variance",
    "p_mean_variance",
    "predict_eps_from_v",
    "predict_eps_from_xstart",
    "predict_xstart_from_eps",
    "predict_xstart_from_v",
    "predict_xstart_from_xprev",
    "q_mean_variance",
    "q_posterior_mean_variance",
    "q_sample",
    "split_model_output",
    "velocity",
]


def check_timesteps(t: torch.Tensor, num_timesteps: int) -> None:
    """ValueError naming ``t`` and the range [0, T) when an entry of ``t`` lies outside it.

    Reading ``t``'s values is free only where they already are on the host, so the check runs for CPU
    tensors; for a tensor on an accelerator it would force a host sync per call, so it runs there only in
    PyTorch's debug mode (``torch.autograd.set_detect_anomaly(True)``).  Inside ``torch.compile`` tracing
    it is skipped (the eager call checks the same values).
    """
    if torch.compiler.is_compiling() or t.numel() == 0:
        return
    if t.device.type != "cpu" and not torch.is_anomaly_enabled():
        return
    low, high = int(t.min()), int(t.max())
    if low < 0 or high >= num_timesteps:
        raise ValueError(
            f"t must lie in [0, {num_timesteps}) (T = {num_timesteps} timesteps); "
            f"got values from {low} to {high}"
        )


def gather(table: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """table[t] reshaped to (B, 1, ..., 1) with `ndim` axes, for broadcasting against (B, ...); a ``t``
    outside [0, T) is a ValueError (:func:`check_timesteps`)."""
    check_timesteps(t, table.shape[0])
    values = table.index_select(0, t.to(device=table.device, dtype=torch.long).reshape(-1))
    return values.reshape(values.shape[0], *([1] * (ndim - 1)))


def q_mean_variance(
    tab: TorchTables, x_start: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q(x_t|x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I): (mean, variance, log-variance) [S5]."""
    n = x_start.ndim
    mean = gather(tab.sqrt_alphas_cumprod, t, n) * x_start
    variance = (1.0 - gather(tab.alphas_cumprod, t, n)).expand(x_start.shape)
    log_variance = gather(tab.log_one_minus_alphas_cumprod, t, n).expand(x_start.shape)
    return mean, variance, log_variance


def q_sample(tab: TorchTables, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε [S6]."""
    n = x_start.ndim
    return (
        gather(tab.sqrt_alphas_cumprod, t, n) * x_start
        + gather(tab.sqrt_one_minus_alphas_cumprod, t, n) * noise
    )


def q_posterior_mean_variance(
    tab: TorchTables, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """μ̃_t = c1 x_0 + c2 x_t [S7], β̃_t and its clipped log [S8]: (mean, variance, log_variance_clipped)."""
    n = x_t.ndim
    mean = gather(tab.posterior_mean_coef1, t, n) * x_start + gather(tab.posterior_mean_coef2, t, n) * x_t
    variance = gather(tab.posterior_variance, t, n).expand(x_t.shape)
    log_variance = gather(tab.posterior_log_variance_clipped, t, n).expand(x_t.shape)
    return mean, variance, log_variance


def predict_xstart_from_eps(
    tab: TorchTables, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """x_0 = √(1/ᾱ_t) x_t − √(1/ᾱ_t − 1) ε [S9]."""
    n = x_t.ndim
    return (
        gather(tab.sqrt_recip_alphas_cumprod, t, n) * x_t
        - gather(tab.sqrt_recipm1_alphas_cumprod, t, n) * eps
    )


def predict_eps_from_xstart(
    tab: TorchTables, x_t: torch.Tensor, t: torch.Tensor, pred_xstart: torch.Tensor
) -> torch.Tensor:
    """ε = (√(1/ᾱ_t) x_t − x_0)/√(1/ᾱ_t − 1), the inverse of [S9]."""
    n = x_t.ndim
    numerator = gather(tab.sqrt_recip_alphas_cumprod, t, n) * x_t - pred_xstart
    return numerator / gather(tab.sqrt_recipm1_alphas_cumprod, t, n)


def velocity(tab: TorchTables, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """v = √ᾱ_t ε − √(1 − ᾱ_t) x_0, the v-prediction target [S40]."""
    n = x_start.ndim
    return (
        gather(tab.sqrt_alphas_cumprod, t, n) * noise
        - gather(tab.sqrt_one_minus_alphas_cumprod, t, n) * x_start
    )


def predict_xstart_from_v(
    tab: TorchTables, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """x̂_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v̂ [S41]."""
    n = x_t.ndim
    return gather(tab.sqrt_alphas_cumprod, t, n) * x_t - gather(tab.sqrt_one_minus_alphas_cumprod, t, n) * v


def predict_eps_from_v(tab: TorchTables, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """ε̂ = √(1 − ᾱ_t) x_t + √ᾱ_t v̂ [S41]."""
    n = x_t.ndim
    return gather(tab.sqrt_one_minus_alphas_cumprod, t, n) * x_t + gather(tab.sqrt_alphas_cumprod, t, n) * v


def predict_xstart_from_xprev(
    tab: TorchTables, x_t: torch.Tensor, t: torch.Tensor, xprev: torch.Tensor
) -> torch.Tensor:
    """x_0 = x_{t−1}/c1 − (c2/c1) x_t [S10]."""
    n = x_t.ndim
    coef1 = gather(tab.posterior_mean_coef1, t, n)
    coef2 = gather(tab.posterior_mean_coef2, t, n)
    return xprev / coef1 - (coef2 / coef1) * x_t


def model_variance(
    tab: TorchTables,
    model_var_values: torch.Tensor | None,
    t: torch.Tensor,
    *,
    model_var_type: ModelVarType,
    shape: tuple[int, ...] | torch.Size,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_θ and log Σ_θ for each variance type [S11]–[S14]; `model_var_values` is None for fixed types."""
    n = len(shape)
    if model_var_type is ModelVarType.FIXED_SMALL:
        log_var = gather(tab.posterior_log_variance_clipped, t, n).expand(shape)
        return gather(tab.posterior_variance, t, n).expand(shape), log_var
    if model_var_type is ModelVarType.FIXED_LARGE:
        log_var = gather(tab.fixed_large_log_variance, t, n).expand(shape)
        return gather(tab.fixed_large_variance, t, n).expand(shape), log_var
    if model_var_values is None:
        raise ValueError(f"model_var_values is required for model_var_type={model_var_type.name}")
    if model_var_type is ModelVarType.LEARNED:
        return torch.exp(model_var_values), model_var_values
    if model_var_type is ModelVarType.LEARNED_RANGE:
        min_log = gather(tab.posterior_log_variance_clipped, t, n)
        max_log = gather(tab.log_betas, t, n)
        frac = (model_var_values + 1.0) / 2.0
        log_var = frac * max_log + (1.0 - frac) * min_log
        return torch.exp(log_var), log_var
    raise ValueError(f"model_var_type must be a ModelVarType, got {model_var_type!r}")


def is_learned(model_var_type: ModelVarType) -> bool:
    """True when the network outputs variance channels (LEARNED, LEARNED_RANGE)."""
    return model_var_type in (ModelVarType.LEARNED, ModelVarType.LEARNED_RANGE)


def split_model_output(
    model_output: torch.Tensor, x_t: torch.Tensor, model_var_type: ModelVarType
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mean part, variance part or None): a learned variance doubles the channels on axis 1."""
    channels = x_t.shape[1]
    expected = 2 * channels if is_learned(model_var_type) else channels
    if model_output.ndim != x_t.ndim or model_output.shape[1] != expected:
        raise ValueError(
            f"model_output has shape {tuple(model_output.shape)}; with x of shape {tuple(x_t.shape)} and "
            f"model_var_type={model_var_type.name} it must have {expected} channels on axis 1"
        )
    if expected == channels:
        return model_output, None
    mean_part, var_part = torch.split(model_output, channels, dim=1)
    return mean_part, var_part


def p_mean_variance(
    tab: TorchTables,
    model_output: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    *,
    model_mean_type: ModelMeanType,
    model_var_type: ModelVarType,
    clip_denoised: bool = True,
    denoised_fn: DenoisedFn | None = None,
) -> dict[str, torch.Tensor]:
    """p_θ(x_{t−1}|x_t) from the net output: keys mean, variance, log_variance, pred_xstart (SPEC §3)."""
    mean_part, var_part = split_model_output(model_output, x_t, model_var_type)
    variance, log_variance = model_variance(tab, var_part, t, model_var_type=model_var_type, shape=x_t.shape)

    def finish_xstart(raw: torch.Tensor) -> torch.Tensor:
        value = denoised_fn(raw) if denoised_fn is not None else raw
        return value.clamp(-1.0, 1.0) if clip_denoised else value

    if model_mean_type is ModelMeanType.PREVIOUS_X:
        pred_xstart = finish_xstart(predict_xstart_from_xprev(tab, x_t, t, mean_part))
        mean = mean_part
    elif model_mean_type is ModelMeanType.START_X:
        pred_xstart = finish_xstart(mean_part)
        mean = q_posterior_mean_variance(tab, pred_xstart, x_t, t)[0]
    elif model_mean_type is ModelMeanType.EPSILON:
        pred_xstart = finish_xstart(predict_xstart_from_eps(tab, x_t, t, mean_part))
        mean = q_posterior_mean_variance(tab, pred_xstart, x_t, t)[0]
    elif model_mean_type is ModelMeanType.VELOCITY:
        pred_xstart = finish_xstart(predict_xstart_from_v(tab, x_t, t, mean_part))
        mean = q_posterior_mean_variance(tab, pred_xstart, x_t, t)[0]
    else:
        raise ValueError(f"model_mean_type must be a ModelMeanType, got {model_mean_type!r}")
    return {"mean": mean, "variance": variance, "log_variance": log_variance, "pred_xstart": pred_xstart}
