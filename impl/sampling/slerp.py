"""Spherical linear interpolation between two latents (for `iddpm interpolate`)."""

from __future__ import annotations

import torch

__all__ = ["slerp"]


def slerp(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """sin((1 − α)θ)/sin θ · a + sin(αθ)/sin θ · b, θ the angle between a and b flattened.

    α = 0 gives a, α = 1 gives b; for (anti-)parallel a, b (sin θ ≈ 0) the linear (1 − α)·a + α·b.
    """
    if a.shape != b.shape:
        raise ValueError(f"b has shape {tuple(b.shape)}, expected a's shape {tuple(a.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    a64, b64 = a.double().flatten(), b.double().flatten()
    cos = torch.dot(a64, b64) / (a64.norm() * b64.norm()).clamp_min(1e-300)
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(theta)
    if float(sin) < 1e-6:
        mixed = (1.0 - alpha) * a64 + alpha * b64
    else:
        mixed = (torch.sin((1.0 - alpha) * theta) * a64 + torch.sin(alpha * theta) * b64) / sin
    return mixed.reshape(a.shape).to(a.dtype)
