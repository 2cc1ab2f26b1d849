"""Residual block conditioned on the timestep/class embedding, and the container that feeds it (SPEC §8)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from impl.nn.layers import Downsample, Upsample, conv_nd, normalization, zero_module
from impl.nn.recompute import run_segment

__all__ = ["ResBlock", "TimestepBlock", "TimestepEmbedSequential"]


class TimestepBlock(nn.Module):
    """A module whose forward takes the embedding as a second argument: ``forward(x, emb)``."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class TimestepEmbedSequential(nn.ModuleList):
    """Apply the children in order, passing the embedding to those that are :class:`TimestepBlock`.

    Children are named ``0, 1, …`` exactly like ``nn.Sequential``, which gives the checkpoint names
    ``input_blocks.N.M.*``.
    """

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            out: torch.Tensor = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
            x = out
        return x


class ResBlock(TimestepBlock):
    """norm → SiLU → conv3×3, embedding injection, norm → SiLU → Dropout → zero conv3×3, + skip [SPEC §8].

    With ``use_scale_shift_norm`` the embedding is projected to ``2·out`` channels ``(scale, shift)`` and
    applied as ``norm(h)·(1 + scale) + shift``; otherwise it is projected to ``out`` channels and added
    before the output layers.  ``up``/``down`` resample inside the block (``resblock_updown``).
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_conv: bool = False,
        use_scale_shift_norm: bool = False,
        dims: int = 2,
        use_checkpoint: bool = False,
        up: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        if up and down:
            raise ValueError("ResBlock cannot both upsample and downsample (up=True and down=True)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.channels = channels
        self.emb_channels = emb_channels
        self.out_channels = out_channels if out_channels is not None else channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.use_checkpoint = use_checkpoint
        # Runtime switch (not a checkpoint flag): recompute the norm/SiLU segments in the backward pass.
        self.recompute_norms = False
        self.updown = up or down

        self.in_layers = nn.Sequential(
            normalization(channels), nn.SiLU(), conv_nd(dims, channels, self.out_channels, 3, padding=1)
        )
        self.h_upd: nn.Module
        self.x_upd: nn.Module
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False, dims), Upsample(channels, False, dims)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False, dims), Downsample(channels, False, dims)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        emb_out = 2 * self.out_channels if use_scale_shift_norm else self.out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(
            normalization(self.out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            zero_module(conv_nd(dims, self.out_channels, self.out_channels, 3, padding=1)),
        )
        self.skip_connection: nn.Module
        if self.out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            kernel = 3 if use_conv else 1
            self.skip_connection = conv_nd(dims, channels, self.out_channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.use_checkpoint and torch.is_grad_enabled():
            out: torch.Tensor = checkpoint(self._forward, x, emb, use_reentrant=False)
            return out
        return self._forward(x, emb)

    def _forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # Inside a whole-block checkpoint the segments are recomputed anyway.
        recompute = self.recompute_norms and not self.use_checkpoint
        in_norm, in_act, in_conv = self.in_layers
        h = run_segment(lambda v: in_act(in_norm(v)), x, recompute=recompute)
        if self.updown:
            h = self.h_upd(h)
            x = self.x_upd(x)
        h = in_conv(h)
        emb_out: torch.Tensor = self.emb_layers(emb).to(h.dtype)
        emb_out = emb_out.reshape(*emb_out.shape, *([1] * (h.ndim - 2)))
        out_norm, out_act, out_drop, out_conv = self.out_layers
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = run_segment(
                lambda v, s, b: out_drop(out_act(out_norm(v) * (1 + s) + b)),
                h,
                scale,
                shift,
                recompute=recompute,
            )
        else:
            h = run_segment(lambda v, e: out_drop(out_act(out_norm(v + e))), h, emb_out, recompute=recompute)
        out: torch.Tensor = out_conv(h)
        skip: torch.Tensor = self.skip_connection(x)
        return skip + out
