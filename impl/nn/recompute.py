"""Selective recomputation of the cheap, memory-heavy segments of the U-Net: GroupNorm → (scale-shift or
embedding add) → SiLU → (dropout).

Autograd normally keeps every intermediate of such a segment for the backward pass: the float32 copy that
:class:`~impl.nn.layers.GroupNorm32` normalises under bf16/fp16 autocast, the normalised tensor, the
modulated tensor, the SiLU input and the dropout mask.  With recomputation on, only the segment's inputs are
kept and the segment is run again during the backward pass (``torch.utils.checkpoint``, non-reentrant, with
the RNG state and autocast state of the forward pass restored).  The recomputed values are the forward
values exactly, so losses and gradients are bit-identical to the plain path; the cost is one more
element-wise pass per segment in the backward.  The convolutions, the attention and the residual adds are
not recomputed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["run_segment"]


def run_segment(segment: Callable[..., torch.Tensor], *inputs: torch.Tensor, recompute: bool) -> torch.Tensor:
    """``segment(*inputs)``; when ``recompute`` and gradients are enabled, its intermediates are not stored
    but recomputed in the backward pass (identical values, see the module docstring)."""
    if recompute and torch.is_grad_enabled():
        out: torch.Tensor = checkpoint(segment, *inputs, use_reentrant=False, preserve_rng_state=True)
        return out
    return segment(*inputs)
