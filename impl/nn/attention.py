"""Self-attention block of the U-Net with two interchangeable backends (SPEC §8).

Both backends compute the original's function: the qkv projection's 3C output channels are laid out as
``(heads, 3, C/heads)`` (the original reshapes ``(B, 3C, HW)`` to ``(B·heads, 3·C/heads, HW)`` and splits
q, k, v), and the logits are ``(q·c^{−¼})ᵀ(k·c^{−¼}) = qᵀk / √c`` with ``c = C/heads``.

- ``"naive"``: the original's einsum formulation with the softmax in (at least) float32; the reference.
- ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention`` (its default scale ``1/√c`` is the same),
  which dispatches to flash / memory-efficient kernels on GPUs.

Activations are handled as a token matrix ``(B, HW, C)``, which is a free view of a channels-last tensor,
so the block keeps ``torch.channels_last`` inputs channels-last without copies around the projections.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as nnf
from torch.utils.checkpoint import checkpoint

from impl.nn.layers import normalization, zero_module
from impl.nn.recompute import run_segment

__all__ = [
    "ATTENTION_BACKENDS",
    "AttentionBackend",
    "AttentionBlock",
    "naive_attention",
    "sdpa_attention",
]

AttentionBackend = Literal["sdpa", "naive"]
ATTENTION_BACKENDS: tuple[AttentionBackend, ...] = ("sdpa", "naive")


def check_attention_backend(backend: str) -> AttentionBackend:
    """Validate an ``attention_backend`` value."""
    if backend == "sdpa":
        return "sdpa"
    if backend == "naive":
        return "naive"
    raise ValueError(f"attention_backend must be one of {ATTENTION_BACKENDS}, got {backend!r}")


def _head_channels(qkv: torch.Tensor, num_heads: int) -> int:
    three_c = qkv.shape[-1]
    if three_c % (3 * num_heads) != 0:
        raise ValueError(f"qkv width {three_c} is not divisible by 3·num_heads = {3 * num_heads}")
    return three_c // (3 * num_heads)


def naive_attention(qkv: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``softmax((q·c^{−¼})ᵀ(k·c^{−¼}))`` applied to v, head layout ``(B·heads, 3c, T)`` [SPEC §8].

    ``qkv`` is ``(B, T, 3C)``; returns ``(B, T, C)``.  The softmax runs in at least float32.
    """
    b, t, _ = qkv.shape
    ch = _head_channels(qkv, num_heads)
    per_head = qkv.transpose(1, 2).reshape(b * num_heads, 3 * ch, t)
    q, k, v = per_head.chunk(3, dim=1)
    scale = ch**-0.25
    logits = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    weights = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    out = torch.einsum("bts,bcs->bct", weights.to(v.dtype), v)
    return out.reshape(b, num_heads * ch, t).transpose(1, 2)


def sdpa_attention(qkv: torch.Tensor, num_heads: int) -> torch.Tensor:
    """The same function as :func:`naive_attention` through ``scaled_dot_product_attention`` [SPEC §8].

    ``qkv`` is ``(B, T, 3C)``; returns ``(B, T, C)``.  SDPA's default scale ``1/√c`` equals the original's
    ``c^{−¼}`` applied to both q and k.
    """
    b, t, _ = qkv.shape
    ch = _head_channels(qkv, num_heads)
    q, k, v = qkv.reshape(b, t, num_heads, 3, ch).permute(3, 0, 2, 1, 4).unbind(0)
    out = nnf.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(b, t, num_heads * ch)


class AttentionBlock(nn.Module):
    """GroupNorm → qkv (1×1) → multi-head attention → zero-initialised 1×1 ``proj_out`` → residual [SPEC §8].

    ``qkv`` and ``proj_out`` are ``nn.Conv1d`` with kernel size 1, as in the released checkpoints.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_checkpoint: bool = False,
        attention_backend: str = "sdpa",
    ) -> None:
        super().__init__()
        if num_head_channels == -1:
            if num_heads < 1 or channels % num_heads != 0:
                raise ValueError(
                    f"num_heads must be a positive divisor of the attention width {channels}, got {num_heads}"
                )
            self.num_heads = num_heads
        else:
            if num_head_channels < 1 or channels % num_head_channels != 0:
                raise ValueError(
                    f"num_head_channels must be -1 or a positive divisor of the attention width {channels}, "
                    f"got {num_head_channels}"
                )
            self.num_heads = channels // num_head_channels
        self.channels = channels
        self.use_checkpoint = use_checkpoint
        self.attention_backend: AttentionBackend = check_attention_backend(attention_backend)
        # Runtime switch (not a checkpoint flag): recompute the GroupNorm in the backward pass.
        self.recompute_norms = False
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_checkpoint and torch.is_grad_enabled():
            out: torch.Tensor = checkpoint(self._forward, x, use_reentrant=False)
            return out
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1]
        spatial = x.shape[2:]
        recompute = self.recompute_norms and not self.use_checkpoint
        tokens = run_segment(self.norm, x, recompute=recompute).flatten(2).transpose(1, 2)
        qkv = nnf.linear(tokens, self.qkv.weight.squeeze(-1), self.qkv.bias)
        if self.attention_backend == "sdpa":
            mixed = sdpa_attention(qkv, self.num_heads)
        else:
            mixed = naive_attention(qkv, self.num_heads)
        h = nnf.linear(mixed, self.proj_out.weight.squeeze(-1), self.proj_out.bias)
        return x + h.transpose(1, 2).reshape(b, c, *spatial)
