"""The full variational bound in bits/dim [S20], looped over every timestep (`calc_bpd_loop`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from impl.diffusion.gaussian import mean_flat

if TYPE_CHECKING:
    from impl.diffusion.gaussian_diffusion import GaussianDiffusion

__all__ = ["calc_bpd_loop"]

Model = Callable[..., torch.Tensor]


def calc_bpd_loop(
    diffusion: GaussianDiffusion,
    model: Model,
    x_start: torch.Tensor,
    clip_denoised: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    noise: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Σ_t L_t + L_T [S20] with per-t terms; `noise[t]` (shape (T, *x.shape)) is the ε used at step t.

    Returns total_bpd, prior_bpd (B,) and vb, xstart_mse, mse (B, T) in the original code's column order:
    the chain is walked from t = T − 1 down to 0, so column j holds timestep T − 1 − j (the decoder term
    L_0 is the last column). ``noise`` is indexed by timestep, not by column.
    """
    steps = diffusion.num_timesteps
    if noise is not None and tuple(noise.shape) != (steps, *x_start.shape):
        raise ValueError(f"noise must have shape {(steps, *x_start.shape)}, got {tuple(noise.shape)}")
    batch = x_start.shape[0]
    vb, xstart_mse, mse = [], [], []
    for i in reversed(range(steps)):
        t = torch.full((batch,), i, dtype=torch.long, device=x_start.device)
        if noise is not None:
            eps = noise[i].to(device=x_start.device, dtype=x_start.dtype)
        else:
            eps = torch.randn(x_start.shape, generator=generator, device=x_start.device, dtype=x_start.dtype)
        x_t = diffusion.q_sample(x_start, t, eps)
        with torch.no_grad():
            out = diffusion.vb_terms_bpd(model, x_start, x_t, t, clip_denoised, model_kwargs)
        vb.append(out["output"])
        xstart_mse.append(mean_flat((out["pred_xstart"] - x_start) ** 2))
        eps_pred = diffusion._predict_eps_from_xstart(x_t, t, out["pred_xstart"])
        mse.append(mean_flat((eps_pred - eps) ** 2))
    vb_table = torch.stack(vb, dim=1)
    prior = diffusion.prior_bpd(x_start)
    return {
        "total_bpd": vb_table.sum(dim=1) + prior,
        "prior_bpd": prior,
        "vb": vb_table,
        "xstart_mse": torch.stack(xstart_mse, dim=1),
        "mse": torch.stack(mse, dim=1),
    }
