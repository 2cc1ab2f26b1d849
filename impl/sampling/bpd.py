"""The full variational bound in bits/dim [S20], looped over every timestep (`calc_bpd_loop`).

With ``timestep_batch=k`` the loop evaluates k timesteps per network call by stacking k copies of the
batch along the batch axis (x_t for k different t); the columns, their order and the noise draws are
those of ``timestep_batch=1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from impl.diffusion.gaussian import mean_flat
from impl.diffusion.process import predict_eps_from_xstart
from impl.diffusion.types import LikelihoodProcess, Model

__all__ = ["calc_bpd_loop", "descending_timestep_groups", "repeat_model_kwargs"]


def descending_timestep_groups(num_timesteps: int, timestep_batch: int) -> list[list[int]]:
    """T−1, …, 0 cut into consecutive groups of `timestep_batch` (the last group may be shorter)."""
    if isinstance(timestep_batch, bool) or not isinstance(timestep_batch, int) or timestep_batch < 1:
        raise ValueError(f"timestep_batch must be a positive int, got {timestep_batch!r}")
    descending = list(range(num_timesteps - 1, -1, -1))
    return [descending[start : start + timestep_batch] for start in range(0, num_timesteps, timestep_batch)]


def repeat_model_kwargs(
    model_kwargs: dict[str, Any] | None, copies: int, batch: int
) -> dict[str, Any] | None:
    """The kwargs of a batch stacked `copies` times: tensors with a leading batch axis of size `batch` are
    concatenated `copies` times along it; 0-d tensors and non-tensors pass through unchanged."""
    if model_kwargs is None or copies == 1:
        return model_kwargs
    repeated: dict[str, Any] = {}
    for name, value in model_kwargs.items():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            if value.shape[0] != batch:
                raise ValueError(
                    f"model_kwargs[{name!r}] has leading size {value.shape[0]}; with timestep_batch > 1 "
                    f"every tensor keyword must be per-sample (leading size {batch}) or 0-d"
                )
            value = torch.cat([value] * copies, dim=0)
        repeated[name] = value
    return repeated


def _group_noise(
    group: Sequence[int],
    x_start: torch.Tensor,
    noise: torch.Tensor | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """ε for every timestep of the group, stacked along the batch axis; drawn one timestep at a time in
    the group's (descending) order, so the draws do not depend on the group size."""
    parts = []
    for i in group:
        if noise is not None:
            parts.append(noise[i].to(device=x_start.device, dtype=x_start.dtype))
        else:
            parts.append(
                torch.randn(x_start.shape, generator=generator, device=x_start.device, dtype=x_start.dtype)
            )
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def calc_bpd_loop(
    diffusion: LikelihoodProcess,
    model: Model,
    x_start: torch.Tensor,
    clip_denoised: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    noise: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    timestep_batch: int = 1,
) -> dict[str, torch.Tensor]:
    """Σ_t L_t + L_T [S20] with per-t terms; `noise[t]` (shape (T, *x.shape)) is the ε used at step t.

    Returns total_bpd, prior_bpd (B,) and vb, xstart_mse, mse (B, T) in the original code's column order:
    the chain is walked from t = T − 1 down to 0, so column j holds timestep T − 1 − j (the decoder term
    L_0 is the last column). ``noise`` is indexed by timestep, not by column.

    ``timestep_batch=k`` evaluates k timesteps per network call (batch k·B; ⌈T/k⌉ calls instead of T).
    Tensor ``model_kwargs`` with a leading batch axis are repeated k times.  The model must treat samples
    independently (e.g. eval mode: no batch-norm statistics); then the result equals ``timestep_batch=1``
    up to the network's own batch-size-dependent rounding (none for element-wise per-sample code).
    Without ``noise``, ε is drawn from ``generator`` one timestep at a time in the order T − 1, …, 0
    whatever k is, so a seeded run gives the same numbers for every k.
    """
    steps = diffusion.num_timesteps
    groups = descending_timestep_groups(steps, timestep_batch)
    if noise is not None and tuple(noise.shape) != (steps, *x_start.shape):
        raise ValueError(f"noise must have shape {(steps, *x_start.shape)}, got {tuple(noise.shape)}")
    batch = x_start.shape[0]
    vb, xstart_mse, mse = [], [], []
    for group in groups:
        copies = len(group)
        t = torch.cat([torch.full((batch,), i, dtype=torch.long, device=x_start.device) for i in group])
        stacked_start = x_start if copies == 1 else torch.cat([x_start] * copies, dim=0)
        eps = _group_noise(group, x_start, noise, generator)
        x_t = diffusion.q_sample(stacked_start, t, eps)
        with torch.no_grad():
            out = diffusion.vb_terms_bpd(
                model, stacked_start, x_t, t, clip_denoised, repeat_model_kwargs(model_kwargs, copies, batch)
            )
        eps_pred = predict_eps_from_xstart(diffusion.tables_for(x_t), x_t, t, out["pred_xstart"])
        # Rows of each (copies, B) table are the group's timesteps in descending order: the column order.
        vb.append(out["output"].reshape(copies, batch))
        xstart_mse.append(mean_flat((out["pred_xstart"] - stacked_start) ** 2).reshape(copies, batch))
        mse.append(mean_flat((eps_pred - eps) ** 2).reshape(copies, batch))
    vb_table = torch.cat(vb, dim=0).transpose(0, 1).contiguous()
    prior = diffusion.prior_bpd(x_start)
    return {
        "total_bpd": vb_table.sum(dim=1) + prior,
        "prior_bpd": prior,
        "vb": vb_table,
        "xstart_mse": torch.cat(xstart_mse, dim=0).transpose(0, 1).contiguous(),
        "mse": torch.cat(mse, dim=0).transpose(0, 1).contiguous(),
    }
