"""Precision policies: fp32, bf16 autocast, fp16 autocast with dynamic loss scaling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
"""The precision policies: fp32, bf16 autocast, fp16 autocast with dynamic loss scaling."""


@dataclass
class PrecisionPolicy:
    """How forward passes run and how the loss is scaled for ``precision`` in ``PRECISIONS``."""

    precision: str
    device: torch.device
    scaler: torch.amp.GradScaler | None

    @classmethod
    def create(cls, precision: str, device: torch.device) -> PrecisionPolicy:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
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
