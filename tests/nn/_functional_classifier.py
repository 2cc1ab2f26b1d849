"""An independent float64 forward of the noisy-image classifier, from the state dict's names alone.

It reuses the functional U-Net pieces of ``_functional_reference`` (GroupNorm, conv, residual block,
attention block, all written without ``impl.nn``) and adds what the classifier has beyond them: residual
blocks that downsample (``resblock_updown``: average pooling after the first norm/SiLU, on both branches),
the four heads, and the attention pool done head by head with explicit channel slices of the
``(3, heads, c)`` layout (head h's q rows ``[hc, hc+c)``, k rows ``[C+hc, C+hc+c)``, v rows
``[2C+hc, 2C+hc+c)``: ``head_rows(..., new_order=True)``, whichever order the attention blocks use).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as nnf

from tests.nn._functional_reference import Params, _attention, _conv, _count, _norm, _res_block, head_rows


def _down_res_block(sd: Params, h: torch.Tensor, emb: torch.Tensor, prefix: str) -> torch.Tensor:
    a = nnf.avg_pool2d(nnf.silu(_norm(sd, h, f"{prefix}.in_layers.0")), 2)
    a = _conv(sd, a, f"{prefix}.in_layers.2")
    e = nnf.linear(nnf.silu(emb), sd[f"{prefix}.emb_layers.1.weight"], sd[f"{prefix}.emb_layers.1.bias"])
    e = e[:, :, None, None]
    ch = a.shape[1]
    if e.shape[1] == 2 * ch:
        a = _norm(sd, a, f"{prefix}.out_layers.0") * (1 + e[:, :ch]) + e[:, ch:]
    else:
        a = _norm(sd, a + e, f"{prefix}.out_layers.0")
    return nnf.avg_pool2d(h, 2) + _conv(sd, nnf.silu(a), f"{prefix}.out_layers.3")


def _block(
    sd: Params, h: torch.Tensor, emb: torch.Tensor, prefix: str, heads: int, down: bool, new_order: bool
) -> torch.Tensor:
    sub = 0
    while any(key.startswith(f"{prefix}.{sub}.") for key in sd):
        p = f"{prefix}.{sub}"
        if f"{p}.in_layers.0.weight" in sd:
            h = _down_res_block(sd, h, emb, p) if down else _res_block(sd, h, emb, p)
        elif f"{p}.qkv.weight" in sd:
            h = _attention(sd, h, p, heads, new_order)
        elif f"{p}.op.weight" in sd:
            h = _conv(sd, h, f"{p}.op", stride=2)
        else:
            raise KeyError(f"unknown block {p}")
        sub += 1
    return h


def _attention_pool(sd: Params, h: torch.Tensor, prefix: str, heads: int) -> torch.Tensor:
    b, ch = h.shape[:2]
    flat = h.reshape(b, ch, -1)
    tokens = torch.cat([flat.mean(dim=2, keepdim=True), flat], dim=2) + sd[f"{prefix}.positional_embedding"]
    qkv = torch.einsum("oc,bct->bot", sd[f"{prefix}.qkv_proj.weight"][:, :, 0], tokens)
    qkv = qkv + sd[f"{prefix}.qkv_proj.bias"][:, None]
    c = ch // heads
    mixed = torch.zeros_like(tokens)
    for head in range(heads):
        q_rows, k_rows, v_rows = head_rows(head, c, ch, new_order=True)
        q, k, v = qkv[:, q_rows], qkv[:, k_rows], qkv[:, v_rows]
        weights = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / math.sqrt(c), dim=-1)
        mixed[:, q_rows] = torch.einsum("bts,bcs->bct", weights, v)
    first = mixed[:, :, 0]  # only the mean token's output is kept
    return first @ sd[f"{prefix}.c_proj.weight"][:, :, 0].T + sd[f"{prefix}.c_proj.bias"]


def reference_classifier_forward(
    sd: Params,
    x: torch.Tensor,
    t: torch.Tensor,
    *,
    pool: str,
    heads: int,
    down_blocks: frozenset[int],
    new_order: bool = False,
) -> torch.Tensor:
    """Embed t (cos first), input blocks (``down_blocks``: indices that are downsampling res blocks),
    middle block, then the head ``pool``; ``heads`` for every attention block and the attention pool;
    ``new_order``: the attention blocks' qkv order (the pool's is always the new one)."""
    d = sd["time_embed.0.weight"].shape[1]
    half = d // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    angles = t.to(torch.float64)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    emb = nnf.linear(emb, sd["time_embed.0.weight"], sd["time_embed.0.bias"])
    emb = nnf.linear(nnf.silu(emb), sd["time_embed.2.weight"], sd["time_embed.2.bias"])
    h = _conv(sd, x, "input_blocks.0.0")
    means = [h.mean(dim=(2, 3))]
    for i in range(1, _count(sd, "input_blocks")):
        h = _block(sd, h, emb, f"input_blocks.{i}", heads, down=i in down_blocks, new_order=new_order)
        means.append(h.mean(dim=(2, 3)))
    h = _block(sd, h, emb, "middle_block", heads, down=False, new_order=new_order)
    means.append(h.mean(dim=(2, 3)))
    if pool == "adaptive":
        pooled = nnf.silu(_norm(sd, h, "out.0")).mean(dim=(2, 3))
        return pooled @ sd["out.3.weight"][:, :, 0, 0].T + sd["out.3.bias"]
    if pool == "attention":
        return _attention_pool(sd, nnf.silu(_norm(sd, h, "out.0")), "out.2", heads)
    feats = torch.cat(means, dim=1)
    hidden = nnf.linear(feats, sd["out.0.weight"], sd["out.0.bias"])
    if pool == "spatial":
        return nnf.linear(torch.relu(hidden), sd["out.2.weight"], sd["out.2.bias"])
    hidden = nnf.silu(nnf.group_norm(hidden, 32, sd["out.1.weight"], sd["out.1.bias"], eps=1e-5))
    return nnf.linear(hidden, sd["out.3.weight"], sd["out.3.bias"])
