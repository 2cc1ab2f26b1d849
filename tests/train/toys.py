"""Tiny stand-ins for trainer unit tests: an MLP ``model(x, t, y=None)`` and a minimal diffusion.

They exercise the trainer's own machinery (batches, microbatching, EMA, checkpoints, DDP) without depending
on the U-Net or on the full diffusion; the end-to-end tests in tests/e2e use the real ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from impl.train import InMemoryData


class TinyMLP(nn.Module):
    """``model(x, t, y=None)`` for inputs of any shape (B, ...): flatten, MLP with a time feature, reshape."""

    def __init__(
        self, shape: Sequence[int], hidden: int = 32, num_classes: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.shape = tuple(shape)
        dim = math.prod(self.shape)
        self.net = nn.Sequential(
            nn.Linear(dim + 2, hidden), nn.SiLU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.label_emb = nn.Embedding(num_classes, 2) if num_classes else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        tf = t.to(torch.float32).unsqueeze(1) / 1000.0
        feats = torch.cat([x.flatten(1), torch.sin(tf), torch.cos(tf)], dim=1)
        if self.label_emb is not None and y is not None:
            feats = feats + torch.nn.functional.pad(self.label_emb(y), (feats.shape[1] - 2, 0))
        out: torch.Tensor = self.net(feats)
        return out.view(x.shape[0], *self.shape)


class ToyDiffusion:
    """ε-prediction with a cosine ᾱ; ``loss``=``mse``; ``vb`` a stand-in term; a 10-step sampler."""

    def __init__(self, num_timesteps: int = 20) -> None:
        self.num_timesteps = num_timesteps
        tau = (np.arange(num_timesteps) + 1) / num_timesteps
        self.alpha_bar = torch.tensor(np.cos((tau + 0.008) / 1.008 * np.pi / 2) ** 2, dtype=torch.float32)

    def training_losses(
        self,
        model: Any,
        x_start: torch.Tensor,
        t: torch.Tensor,
        model_kwargs: dict[str, Any] | None = None,
        noise: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        noise = torch.randn_like(x_start) if noise is None else noise
        ab = self.alpha_bar.to(x_start.device)[t].view(-1, *([1] * (x_start.ndim - 1)))
        x_t = ab.sqrt() * x_start + (1 - ab).sqrt() * noise
        out = model(x_t, t, **(model_kwargs or {}))
        mse = ((out - noise) ** 2).flatten(1).mean(1)
        return {"loss": mse, "mse": mse, "vb": 0.5 * mse.detach()}

    def p_sample_loop(
        self,
        model: Any,
        shape: Sequence[int],
        model_kwargs: dict[str, Any] | None = None,
        progress: bool = False,
        generator: torch.Generator | None = None,
        **_: Any,
    ) -> torch.Tensor:
        x = torch.randn(*shape, generator=generator)
        for i in reversed(range(self.num_timesteps)):
            t = torch.full((shape[0],), i, dtype=torch.int64)
            ab = float(self.alpha_bar[i])
            eps = model(x, t, **(model_kwargs or {}))
            x = ((x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1, 1)
            if i > 0:
                abp = float(self.alpha_bar[i - 1])
                x = math.sqrt(abp) * x + math.sqrt(1 - abp) * torch.randn(*shape, generator=generator)
        return x


def toy_data(
    n: int = 40, shape: Sequence[int] = (1, 4, 4), seed: int = 0, labels: bool = False
) -> InMemoryData:
    """``n`` random uint8 'images' (and labels 0..2 when asked), fixed by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.int64).to(torch.uint8)
    y = torch.arange(n) % 3 if labels else None
    return InMemoryData(x, y)
