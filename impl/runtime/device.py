"""The ``--device`` flag of every command (training, sampling, evaluation) → a ``torch.device``."""

from __future__ import annotations

import torch

__all__ = ["device_from_flag"]


def device_from_flag(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"``: this rank's CUDA device when available, else the CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device
