"""Reading a checkpoint file without trusting it: ``.safetensors``, or ``torch.load(weights_only=True)``.

Every failure is one :class:`CheckpointReadError` line that says what was refused and why; torch's advice
to retry with ``weights_only=False`` (which would run the file's code) is never passed on.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointReadError", "read_checkpoint_file"]


class CheckpointReadError(ValueError):
    """A state-dict file that cannot be read: not a checkpoint, truncated, or refused as unsafe."""


_UNPICKLER_BOILERPLATE = (
    "weights only load failed",
    "weights_only",
    "check the documentation of torch.load",
    "please file an issue",
)


def _unpickler_reason(message: str) -> str:
    """The reason in a ``torch.load(weights_only=True)`` refusal, without torch's advice to retry with
    ``weights_only=False`` (which would run the file's code: iddpm never offers it)."""
    kept: list[str] = []
    for line in message.splitlines():
        text = line.split("WeightsUnpickler error:", 1)[-1].strip()
        if text and not any(b in text.lower() for b in _UNPICKLER_BOILERPLATE):
            kept.append(text)
    return " ".join(kept) or "it holds objects other than tensors and plain containers"


def read_checkpoint_file(path: Path, map_location: str | torch.device) -> Any:
    """``load_file`` of a ``.safetensors`` file, else ``torch.load(weights_only=True)``; every failure is
    a one-line :class:`CheckpointReadError` saying what was refused and why."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=str(map_location))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointReadError(
                f"checkpoint {path} is not a readable .safetensors file: {exc}"
            ) from None
    with path.open("rb") as handle:
        head = handle.read(2)
    if not (head == b"PK" or head[:1] == b"\x80"):  # a torch.save zip archive, or a pickle (protocol >= 2)
        raise CheckpointReadError(
            f"checkpoint {path} is not a PyTorch checkpoint: it is neither a torch.save zip archive nor "
            f"a pickle (it starts with {head!r})"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointReadError(
            f"checkpoint {path} was refused: {_unpickler_reason(str(exc))}; iddpm reads only tensors and "
            "plain containers from .pt files and never runs code from one (if you trust the file, convert "
            "it to .safetensors with the code that wrote it)"
        ) from None
    except (EOFError, KeyError, IndexError, RuntimeError, ValueError, OSError, AttributeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "empty or truncated"
        raise CheckpointReadError(
            f"checkpoint {path} is not a PyTorch checkpoint (neither a torch.save zip file nor a pickle "
            f"it can read: {type(exc).__name__}: {detail})"
        ) from None
