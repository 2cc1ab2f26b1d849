"""The process-wide CUDA math switches a run may set: TF32 matmuls/convolutions and cuDNN autotuning."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BackendFlags:
    """``torch.backends`` settings: TF32 for float32 matmuls (cuBLAS) and convolutions (cuDNN), autotune."""

    matmul_tf32: bool
    cudnn_tf32: bool
    cudnn_benchmark: bool


def current_backend_flags() -> BackendFlags:
    return BackendFlags(
        matmul_tf32=bool(torch.backends.cuda.matmul.allow_tf32),
        cudnn_tf32=bool(torch.backends.cudnn.allow_tf32),
        cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
    )


def set_backend_flags(flags: BackendFlags) -> None:
    torch.backends.cuda.matmul.allow_tf32 = flags.matmul_tf32
    torch.backends.cudnn.allow_tf32 = flags.cudnn_tf32
    torch.backends.cudnn.benchmark = flags.cudnn_benchmark


def apply_backend_flags(
    device: torch.device, *, allow_tf32: bool, cudnn_benchmark: bool
) -> BackendFlags | None:
    """On a CUDA device set TF32 (matmul and cuDNN both) to ``allow_tf32`` and cuDNN autotuning to
    ``cudnn_benchmark``, returning the previous settings for :func:`set_backend_flags`; elsewhere change
    nothing and return None (the switches only affect CUDA kernels)."""
    if device.type != "cuda":
        return None
    previous = current_backend_flags()
    set_backend_flags(
        BackendFlags(matmul_tf32=allow_tf32, cudnn_tf32=allow_tf32, cudnn_benchmark=cudnn_benchmark)
    )
    return previous


@contextlib.contextmanager
def backend_flags_scope(device: torch.device, *, allow_tf32: bool, cudnn_benchmark: bool) -> Iterator[None]:
    """:func:`apply_backend_flags` for the duration of a ``with`` block, the previous settings restored on
    exit (also on an exception).  Off CUDA it changes nothing."""
    previous = apply_backend_flags(device, allow_tf32=allow_tf32, cudnn_benchmark=cudnn_benchmark)
    try:
        yield
    finally:
        if previous is not None:
            set_backend_flags(previous)
