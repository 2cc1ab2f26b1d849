"""Self-attention block of the U-Net with two interchangeable backends and two q/k/v orders (SPEC §8).

The qkv projection's 3C output channels hold q, k and v of every head in one of two orders:

- legacy (improved-diffusion's, and guided-diffusion's default): ``(heads, q|k|v, C/heads)``: the original
  reshapes ``(B, 3C, HW)`` to ``(B·heads, 3·C/heads, HW)`` and splits q, k, v (:func:`legacy_order_heads`);
- new (guided-diffusion's ``use_new_attention_order=True``, and the classifier's attention pool):
  ``(q|k|v, heads, C/heads)``: q of all heads first, then k, then v (:func:`new_order_heads`).

Both orders have the same parameter shapes; they are different functions of the same weights.  The
logits are ``(q·c^{−¼})ᵀ(k·c^{−¼}) = qᵀk / √c`` with ``c = C/heads``.  Both backends take either order:

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
    "legacy_order_heads",
    "multi_head_attention",
    "naive_attention",
    "new_order_heads",
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


HeadTensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""q, k, v, each ``(B, heads, T, C/heads)``."""


def legacy_order_heads(qkv: torch.Tensor, num_heads: int) -> HeadTensors:
    """q, k, v of ``qkv`` ``(B, T, 3C)`` whose channels are ``(heads, q|k|v, C/heads)`` [SPEC §8].

    Head h's q is channels ``[3ch, 3ch + c)``, its k ``[3ch + c, 3ch + 2c)``, its v ``[3ch + 2c, 3ch + 3c)``;
    each returned tensor is a ``(B, heads, T, c)`` view.
    """
    b, t, _ = qkv.shape
    ch = _head_channels(qkv, num_heads)
    q, k, v = qkv.reshape(b, t, num_heads, 3, ch).permute(3, 0, 2, 1, 4).unbind(0)
    return q, k, v


def new_order_heads(qkv: torch.Tensor, num_heads: int) -> HeadTensors:
    """q, k, v of ``qkv`` ``(B, T, 3C)`` whose channels are ``(q|k|v, heads, C/heads)`` [SPEC §8].

    guided-diffusion's ``use_new_attention_order`` and the classifier's attention pool: head h's q is
    channels ``[hc, hc + c)``, its k ``[C + hc, C + hc + c)``, its v ``[2C + hc, 2C + hc + c)``; each
    returned tensor is a ``(B, heads, T, c)`` view.
    """
    b, t, _ = qkv.shape
    ch = _head_channels(qkv, num_heads)
    q, k, v = qkv.reshape(b, t, 3, num_heads, ch).permute(2, 0, 3, 1, 4).unbind(0)
    return q, k, v


def _split_heads(qkv: torch.Tensor, num_heads: int, use_new_attention_order: bool) -> HeadTensors:
    if use_new_attention_order:
        return new_order_heads(qkv, num_heads)
    return legacy_order_heads(qkv, num_heads)


def naive_attention(
    qkv: torch.Tensor, num_heads: int, *, use_new_attention_order: bool = False
) -> torch.Tensor:
    """``softmax((q·c^{−¼})ᵀ(k·c^{−¼}))`` applied to v, per head as ``(B·heads, c, T)`` [SPEC §8].

    ``qkv`` is ``(B, T, 3C)`` in the legacy order (or the new one with ``use_new_attention_order``);
    returns ``(B, T, C)``, the heads' outputs side by side.  The softmax runs in at least float32.
    """
    b, t, _ = qkv.shape
    heads = _split_heads(qkv, num_heads, use_new_attention_order)
    ch = heads[0].shape[-1]
    q, k, v = (part.transpose(2, 3).reshape(b * num_heads, ch, t) for part in heads)
    scale = ch**-0.25
    logits = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    weights = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    out = torch.einsum("bts,bcs->bct", weights.to(v.dtype), v)
    return out.reshape(b, num_heads * ch, t).transpose(1, 2)


def sdpa_attention(
    qkv: torch.Tensor, num_heads: int, *, use_new_attention_order: bool = False
) -> torch.Tensor:
    """The same function as :func:`naive_attention` through ``scaled_dot_product_attention`` [SPEC §8].

    ``qkv`` is ``(B, T, 3C)``; returns ``(B, T, C)``.  SDPA's default scale ``1/√c`` equals the original's
    ``c^{−¼}`` applied to both q and k.
    """
    b, t, _ = qkv.shape
    q, k, v = _split_heads(qkv, num_heads, use_new_attention_order)
    out = nnf.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(b, t, num_heads * q.shape[-1])


def multi_head_attention(
    qkv: torch.Tensor, num_heads: int, *, backend: AttentionBackend, use_new_attention_order: bool
) -> torch.Tensor:
    """:func:`sdpa_attention` or :func:`naive_attention` (``backend``) of ``qkv`` ``(B, T, 3C)`` in the
    order ``use_new_attention_order`` names; returns ``(B, T, C)``."""
    if backend == "sdpa":
        return sdpa_attention(qkv, num_heads, use_new_attention_order=use_new_attention_order)
    return naive_attention(qkv, num_heads, use_new_attention_order=use_new_attention_order)


def check_attention_order(use_new_attention_order: object) -> bool:
    """Validate a ``use_new_attention_order`` value (True or False)."""
    if not isinstance(use_new_attention_order, bool):
        raise ValueError(
            "use_new_attention_order must be True (qkv channels as (q|k|v, heads, C/heads), "
            "guided-diffusion's new order) or False (the legacy (heads, q|k|v, C/heads)), "
            f"got {use_new_attention_order!r}"
        )
    return use_new_attention_order


class AttentionBlock(nn.Module):
    """GroupNorm → qkv (1×1) → multi-head attention → zero-initialised 1×1 ``proj_out`` → residual [SPEC §8].

    ``qkv`` and ``proj_out`` are ``nn.Conv1d`` with kernel size 1, as in the released checkpoints.
    ``use_new_attention_order`` picks how ``qkv``'s channels split into q, k, v and heads (module
    docstring); the parameters are the same either way.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_checkpoint: bool = False,
        attention_backend: str = "sdpa",
        use_new_attention_order: bool = False,
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
        self.use_new_attention_order = check_attention_order(use_new_attention_order)
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
        mixed = multi_head_attention(
            qkv,
            self.num_heads,
            backend=self.attention_backend,
            use_new_attention_order=self.use_new_attention_order,
        )
        h = nnf.linear(mixed, self.proj_out.weight.squeeze(-1), self.proj_out.bias)
        return x + h.transpose(1, 2).reshape(b, c, *spatial)
