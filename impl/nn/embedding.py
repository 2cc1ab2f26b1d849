"""Sinusoidal timestep embedding of the U-Net (SPEC §8)."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as nnf

__all__ = ["timestep_embedding"]


def timestep_embedding(
    timesteps: torch.Tensor,
    dim: int,
    max_period: float = 10000.0,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``[cos(t·f_k), sin(t·f_k)]``, ``f_k = exp(−ln(max_period)·k/half)``, ``k < half = dim//2`` [SPEC §8].

    ``timesteps`` is a ``(B,)`` tensor of integer or float (rescaled) timesteps.  The result has shape
    ``(B, dim)`` (a zero column is appended when ``dim`` is odd) and is computed in ``dtype`` (float32 as in
    the original; float64 for float64 models).
    """
    if timesteps.ndim != 1:
        raise ValueError(f"timesteps must have shape (B,), got {tuple(timesteps.shape)}")
    if dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim}")
    half = dim // 2
    k = torch.arange(half, device=timesteps.device, dtype=dtype)
    freqs = torch.exp(-math.log(max_period) * k / half)
    angles = timesteps.to(dtype)[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        emb = nnf.pad(emb, (0, 1))
    return emb
