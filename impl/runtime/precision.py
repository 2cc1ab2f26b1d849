"""Precisions: their names, the policy (fp32, bf16 autocast, fp16 autocast with dynamic loss scaling) and
the autocast wrapper of a network."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
"""The precisions training and sampling run the network in (bf16 and fp16 under autocast)."""


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` (fp32, bf16, fp16), else a ValueError naming it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


@dataclass
class PrecisionPolicy:
    """How forward passes run and how the loss is scaled for ``precision`` in ``PRECISIONS``."""

    precision: str
    device: torch.device
    scaler: torch.amp.GradScaler | None

    @classmethod
    def create(cls, precision: str, device: torch.device) -> PrecisionPolicy:
        check_precision(precision)
        scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        return cls(precision=precision, device=device, scaler=scaler)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        dtype = self.autocast_dtype
        if dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            yield

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss if self.scaler is None else self.scaler.scale(loss)


class AutocastModel(nn.Module):
    """Runs the wrapped network under the precision policy's autocast and returns float32, so the diffusion
    math (posterior, KL, likelihood) always runs in float32 (training and sampling alike)."""

    def __init__(self, inner: nn.Module, policy: PrecisionPolicy) -> None:
        super().__init__()
        self.inner = inner
        self.policy = policy

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        with self.policy.autocast():
            out: torch.Tensor = self.inner(x, t, **kwargs)
        return out.float()
