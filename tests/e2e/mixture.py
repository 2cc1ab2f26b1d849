"""A 2-D Gaussian mixture as (B, 2, 1, 1) 'images' on the 8-bit grid, and a small MLP ``model(x, t)``."""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.stats import norm
from torch import nn

CENTRES = np.array([[0.5, 0.5], [0.5, -0.5], [-0.5, 0.5], [-0.5, -0.5]])
COMPONENT_STD = 0.1
BIN = 1.0 / 127.5  # width of an 8-bit bin in [-1, 1]


def quantize(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Snap to the 8-bit grid p/127.5 − 1, p ∈ {0..255} (what the discretised decoder [S17] assumes)."""
    pixels = np.clip(np.round((x + 1.0) * 127.5), 0, 255)
    out: NDArray[np.float64] = pixels / 127.5 - 1.0
    return out


def sample_mixture(n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    comp = rng.integers(0, len(CENTRES), size=n)
    return quantize(CENTRES[comp] + COMPONENT_STD * rng.standard_normal((n, 2)))


def gaussian_fit_bits_per_dim(train: NDArray[np.float64], test: NDArray[np.float64]) -> float:
    """Discretised NLL of ``test`` under the best (ML) diagonal Gaussian fit to ``train``, in bits/dim.

    Same discretisation as [S17]: bin [x − 1/255, x + 1/255], the edge bins (x = ±1) take the tails.
    The mixture is symmetric, so its covariance is diagonal and the diagonal fit is the best single fit.
    """
    mean, std = train.mean(0), train.std(0)
    upper = np.where(test > 0.999, np.inf, test + BIN / 2)
    lower = np.where(test < -0.999, -np.inf, test - BIN / 2)
    prob = norm.cdf((upper - mean) / std) - norm.cdf((lower - mean) / std)
    return float(-np.log2(np.maximum(prob, 1e-300)).mean())


def sample_gaussian_fit(train: NDArray[np.float64], n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    return quantize(train.mean(0) + train.std(0) * rng.standard_normal((n, 2)))


class PointMLP(nn.Module):
    """ε and variance prediction for 2-D points: ``model(x (B,2,1,1), t) -> (B, 4, 1, 1)``.

    ``t`` is the rescaled timestep in [0, 1000); the time features are smooth in it (τ = t/1000 and
    cos/sin(πkτ), k = 1..4): high-frequency features alias across the 100 steps and stop an MLP learning.
    """

    def __init__(self, hidden: int = 128, harmonics: int = 4) -> None:
        super().__init__()
        self.register_buffer("harmonics", math.pi * torch.arange(1, harmonics + 1, dtype=torch.float32))
        self.net = nn.Sequential(
            nn.Linear(3 + 2 * harmonics, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 4),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tau = t.to(torch.float32)[:, None] / 1000.0
        angles = tau * self.harmonics[None, :]
        feats = torch.cat([x.flatten(1), tau, torch.cos(angles), torch.sin(angles)], dim=1)
        out: torch.Tensor = self.net(feats)
        return out.view(-1, 4, 1, 1)
