"""An independent float64 U-Net forward written from SPEC §8 with plain functional ops on the state dict.

It walks the parameter names (``input_blocks.N.M.*``, ``middle_block``, ``output_blocks``, ``out``), does
attention head by head with explicit channel slices, and shares no code with ``impl.nn``.  The qkv rows
of head h (width c = C/heads) in the two orders:

- legacy ``(heads, q|k|v, c)``: q ``[3hc, 3hc+c)``, k ``[3hc+c, 3hc+2c)``, v ``[3hc+2c, 3hc+3c)``;
- new (guided-diffusion's ``use_new_attention_order``) ``(q|k|v, heads, c)``: q ``[hc, hc+c)``,
  k ``[C+hc, C+hc+c)``, v ``[2C+hc, 2C+hc+c)``.

It covers the original layout (conv resampling, no ``resblock_updown``), 2-d data, eval mode (no dropout).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as nnf

Params = dict[str, torch.Tensor]


def _norm(sd: Params, h: torch.Tensor, prefix: str) -> torch.Tensor:
    return nnf.group_norm(h, 32, sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], eps=1e-5)


def _conv(sd: Params, h: torch.Tensor, prefix: str, stride: int = 1) -> torch.Tensor:
    weight = sd[f"{prefix}.weight"]
    return nnf.conv2d(h, weight, sd[f"{prefix}.bias"], stride=stride, padding=weight.shape[-1] // 2)


def _res_block(sd: Params, h: torch.Tensor, emb: torch.Tensor, prefix: str) -> torch.Tensor:
    a = _conv(sd, nnf.silu(_norm(sd, h, f"{prefix}.in_layers.0")), f"{prefix}.in_layers.2")
    e = nnf.linear(nnf.silu(emb), sd[f"{prefix}.emb_layers.1.weight"], sd[f"{prefix}.emb_layers.1.bias"])
    e = e[:, :, None, None]
    out_ch = a.shape[1]
    if e.shape[1] == 2 * out_ch:  # use_scale_shift_norm
        scale, shift = e[:, :out_ch], e[:, out_ch:]
        a = _norm(sd, a, f"{prefix}.out_layers.0") * (1 + scale) + shift
    else:
        a = _norm(sd, a + e, f"{prefix}.out_layers.0")
    a = _conv(sd, nnf.silu(a), f"{prefix}.out_layers.3")
    skip = _conv(sd, h, f"{prefix}.skip_connection") if f"{prefix}.skip_connection.weight" in sd else h
    return skip + a


def head_rows(head: int, c: int, width: int, *, new_order: bool) -> tuple[slice, slice, slice]:
    """The qkv rows of ``head``'s q, k and v (``c`` channels per head, ``width`` C channels in all)."""
    if new_order:
        starts = (head * c, width + head * c, 2 * width + head * c)
    else:
        starts = (3 * c * head, 3 * c * head + c, 3 * c * head + 2 * c)
    q, k, v = (slice(start, start + c) for start in starts)
    return q, k, v


def _attention(sd: Params, h: torch.Tensor, prefix: str, heads: int, new_order: bool = False) -> torch.Tensor:
    b, ch, height, width = h.shape
    n = _norm(sd, h, f"{prefix}.norm").reshape(b, ch, height * width)
    qkv = (
        torch.einsum("oc,bct->bot", sd[f"{prefix}.qkv.weight"][:, :, 0], n)
        + sd[f"{prefix}.qkv.bias"][:, None]
    )
    c = ch // heads
    mixed = torch.zeros_like(n)
    for head in range(heads):
        q_rows, k_rows, v_rows = head_rows(head, c, ch, new_order=new_order)
        q, k, v = qkv[:, q_rows], qkv[:, k_rows], qkv[:, v_rows]
        weights = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / math.sqrt(c), dim=-1)
        mixed[:, head * c : (head + 1) * c] = torch.einsum("bts,bcs->bct", weights, v)
    proj = torch.einsum("oc,bct->bot", sd[f"{prefix}.proj_out.weight"][:, :, 0], mixed)
    proj = proj + sd[f"{prefix}.proj_out.bias"][:, None]
    return h + proj.reshape(b, ch, height, width)


def _block(
    sd: Params, h: torch.Tensor, emb: torch.Tensor, prefix: str, heads: int, new_order: bool
) -> torch.Tensor:
    sub = 0
    while any(key.startswith(f"{prefix}.{sub}.") for key in sd):
        p = f"{prefix}.{sub}"
        if f"{p}.in_layers.0.weight" in sd:
            h = _res_block(sd, h, emb, p)
        elif f"{p}.qkv.weight" in sd:
            h = _attention(sd, h, p, heads, new_order)
        elif f"{p}.op.weight" in sd:
            h = _conv(sd, h, f"{p}.op", stride=2)
        elif f"{p}.conv.weight" in sd:
            h = _conv(sd, nnf.interpolate(h, scale_factor=2.0, mode="nearest"), f"{p}.conv")
        else:
            raise KeyError(f"unknown block {p}")
        sub += 1
    return h


def _count(sd: Params, name: str) -> int:
    return 1 + max(int(key.split(".")[1]) for key in sd if key.startswith(f"{name}."))


def reference_unet_forward(
    sd: Params,
    x: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor | None,
    *,
    heads: int,
    heads_upsample: int,
    new_order: bool = False,
) -> torch.Tensor:
    """SPEC §8 forward: embed t (cos first) [+ label], input blocks, middle, output blocks with skips, out;
    ``new_order``: every attention block splits its qkv rows in the new order (module docstring)."""
    d = sd["time_embed.0.weight"].shape[1]
    half = d // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    angles = t.to(torch.float64)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    emb = nnf.linear(emb, sd["time_embed.0.weight"], sd["time_embed.0.bias"])
    emb = nnf.linear(nnf.silu(emb), sd["time_embed.2.weight"], sd["time_embed.2.bias"])
    if y is not None:
        emb = emb + sd["label_emb.weight"][y]
    skips = []
    h = _conv(sd, x, "input_blocks.0.0")
    skips.append(h)
    for i in range(1, _count(sd, "input_blocks")):
        h = _block(sd, h, emb, f"input_blocks.{i}", heads, new_order)
        skips.append(h)
    h = _block(sd, h, emb, "middle_block", heads, new_order)
    for i in range(_count(sd, "output_blocks")):
        skip = torch.cat([h, skips.pop()], dim=1)
        h = _block(sd, skip, emb, f"output_blocks.{i}", heads_upsample, new_order)
    return _conv(sd, nnf.silu(_norm(sd, h, "out.0")), "out.2")
