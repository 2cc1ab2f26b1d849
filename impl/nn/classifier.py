"""The noisy-image classifier of guided diffusion: the U-Net's encoder half and a pooling head.

``EncoderUNetModel(x, t) -> logits``: the timestep embedding, the U-Net's input blocks and middle block
(the same :class:`ResBlock` / :class:`AttentionBlock` modules and parameter names as :class:`UNetModel`),
then an output head ``out`` chosen by ``pool``:

- ``"adaptive"``: GroupNorm → SiLU → adaptive average pool to 1×1 → zero-initialised 1×1 conv → flatten;
- ``"attention"``: GroupNorm → SiLU → :class:`AttentionPool2d` (the mean token attends over the positions);
- ``"spatial"``: the spatial mean of every input block's and the middle block's features, concatenated,
  → Linear(·, 2048) → ReLU → Linear(2048, classes);
- ``"spatial_v2"``: the same with GroupNorm → SiLU in place of the ReLU.

The parameter layout is that of guided-diffusion's released classifiers (``tests/nn/compat/classifier_*``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import nullcontext
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as nnf

from impl.nn.attention import (
    AttentionBackend,
    AttentionBlock,
    check_attention_backend,
    check_attention_order,
    multi_head_attention,
)
from impl.nn.embedding import timestep_embedding
from impl.nn.encoder import check_network_sizes, encoder_input_blocks
from impl.nn.layers import conv_nd, normalization, zero_module
from impl.nn.resblock import ResBlock, TimestepEmbedSequential

__all__ = ["CLASSIFIER_POOLS", "AttentionPool2d", "ClassifierPool", "EncoderUNetModel"]

ClassifierPool = Literal["adaptive", "attention", "spatial", "spatial_v2"]
CLASSIFIER_POOLS: tuple[ClassifierPool, ...] = ("adaptive", "attention", "spatial", "spatial_v2")

SPATIAL_HIDDEN = 2048
"""Width of the hidden layer of the ``spatial`` / ``spatial_v2`` heads (guided-diffusion's)."""


def check_pool(pool: str) -> ClassifierPool:
    """Validate a ``pool`` value."""
    for allowed in CLASSIFIER_POOLS:
        if pool == allowed:
            return allowed
    raise ValueError(f"pool must be one of {CLASSIFIER_POOLS}, got {pool!r}")


class AttentionPool2d(nn.Module):
    """Attention pooling: tokens ``[mean, x_1 … x_HW] + positional_embedding``, ``qkv_proj`` (1×1),
    multi-head attention, ``c_proj`` (1×1) to ``out_channels``; the output is the mean token's.

    ``qkv_proj``'s ``3C`` output channels are laid out as ``(3, heads, C/heads)`` (q, k, v blocks first,
    then heads: :func:`impl.nn.attention.new_order_heads`), unlike the legacy :class:`AttentionBlock`'s
    ``(heads, 3, C/heads)``: this is the layout of the released checkpoints.  ``positional_embedding`` is
    ``(C, HW + 1)`` for a fixed ``spatial_size``.  ``attention_backend`` is that of :class:`AttentionBlock`.
    """

    def __init__(
        self,
        spatial_size: int,
        channels: int,
        head_channels: int,
        out_channels: int,
        attention_backend: str = "sdpa",
    ) -> None:
        super().__init__()
        if spatial_size < 1:
            raise ValueError(f"spatial_size must be a positive integer, got {spatial_size}")
        if head_channels < 1 or channels % head_channels != 0:
            raise ValueError(
                f"head_channels must be a positive divisor of the pool width {channels}, got {head_channels}"
            )
        self.spatial_size = spatial_size
        self.num_heads = channels // head_channels
        self.attention_backend: AttentionBackend = check_attention_backend(attention_backend)
        self.positional_embedding = nn.Parameter(torch.randn(channels, spatial_size**2 + 1) / channels**0.5)
        self.qkv_proj = nn.Conv1d(channels, 3 * channels, 1)
        self.c_proj = nn.Conv1d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[2:] != (self.spatial_size, self.spatial_size):
            raise ValueError(
                f"AttentionPool2d expects (B, C, {self.spatial_size}, {self.spatial_size}) features, "
                f"got {tuple(x.shape)}; the classifier's image_size fixes the pooled resolution"
            )
        b, c = x.shape[0], x.shape[1]
        flat = x.reshape(b, c, -1)
        tokens = torch.cat([flat.mean(dim=-1, keepdim=True), flat], dim=-1)
        tokens = tokens + self.positional_embedding.to(tokens.dtype)[None]
        qkv = nnf.conv1d(tokens, self.qkv_proj.weight, self.qkv_proj.bias)  # (B, 3C, T)
        mixed = multi_head_attention(
            qkv.transpose(1, 2), self.num_heads, backend=self.attention_backend, use_new_attention_order=True
        )  # (B, T, C)
        out = nnf.conv1d(mixed.transpose(1, 2).contiguous(), self.c_proj.weight, self.c_proj.bias)
        return out[:, :, 0]


class EncoderUNetModel(nn.Module):
    """The U-Net's encoder half with a pooling head: ``forward(x, timesteps) -> (B, out_channels)`` logits.

    Arguments mean what they mean for :class:`UNetModel` (``in_channels``, ``model_channels``,
    ``out_channels`` = the number of classes, ``num_res_blocks``, ``attention_resolutions`` as downsample
    factors, ``dropout``, ``channel_mult``, ``conv_resample``, ``use_checkpoint``, ``num_heads`` /
    ``num_head_channels``, ``use_scale_shift_norm``, ``resblock_updown``, ``attention_backend``,
    ``use_new_attention_order``: the q/k/v order of the attention blocks, not of the pool), plus:

    - ``image_size``: the input's height and width (the attention pool's positional embedding is fixed
      to the lowest resolution ``image_size / 2^(levels−1)``);
    - ``pool``: one of :data:`CLASSIFIER_POOLS` (see the module docstring);
    - ``use_fp16``: run the trunk (input and middle blocks) under float16 autocast when the input is on
      CUDA; the parameters stay float32 and the head runs in float32 (no effect on CPU).
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_resolutions: Collection[int],
        dropout: float = 0.0,
        channel_mult: Sequence[float] = (1, 2, 4, 8),
        conv_resample: bool = True,
        use_checkpoint: bool = False,
        use_fp16: bool = False,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        pool: str = "adaptive",
        attention_backend: str = "sdpa",
        *,
        use_new_attention_order: bool = False,
    ) -> None:
        super().__init__()
        check_network_sizes(
            {
                "image_size": image_size,
                "in_channels": in_channels,
                "model_channels": model_channels,
                "out_channels": out_channels,
                "num_res_blocks": num_res_blocks,
            },
            channel_mult,
        )
        factor = 2 ** (len(channel_mult) - 1)
        if image_size % factor:
            raise ValueError(
                f"image_size {image_size} must be divisible by 2^(len(channel_mult)-1) = {factor}"
            )
        self.pool: ClassifierPool = check_pool(pool)
        if self.pool == "attention" and num_head_channels == -1:
            raise ValueError("pool 'attention' needs num_head_channels (the pool's width per head), got -1")
        backend = check_attention_backend(attention_backend)
        new_order = check_attention_order(use_new_attention_order)
        self.image_size = image_size
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.out_channels = out_channels
        self.channel_mult = tuple(channel_mult)
        self.attention_resolutions = frozenset(int(r) for r in attention_resolutions)
        self.use_fp16 = use_fp16
        self.use_new_attention_order = new_order

        emb_dim = model_channels * 4
        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )

        def res_block(ch_in: int, ch_out: int, *, down: bool = False) -> ResBlock:
            return ResBlock(
                ch_in,
                emb_dim,
                dropout,
                out_channels=ch_out,
                use_checkpoint=use_checkpoint,
                use_scale_shift_norm=use_scale_shift_norm,
                down=down,
            )

        def attention(ch: int) -> AttentionBlock:
            return AttentionBlock(
                ch,
                num_heads=num_heads,
                num_head_channels=num_head_channels,
                use_checkpoint=use_checkpoint,
                attention_backend=backend,
                use_new_attention_order=new_order,
            )

        self.input_blocks, block_channels, ds = encoder_input_blocks(
            in_channels=in_channels,
            model_channels=model_channels,
            channel_mult=channel_mult,
            num_res_blocks=num_res_blocks,
            attention_resolutions=self.attention_resolutions,
            dims=2,
            conv_resample=conv_resample,
            resblock_updown=resblock_updown,
            res_block=res_block,
            attention=attention,
        )
        ch = block_channels[-1]
        feature_size = sum(block_channels)
        self.middle_block = TimestepEmbedSequential([res_block(ch, ch), attention(ch), res_block(ch, ch)])
        feature_size += ch
        self.feature_size = feature_size
        self.out = self._head(ch, image_size // ds, num_head_channels, backend)

    def _head(
        self, ch: int, final_size: int, num_head_channels: int, backend: AttentionBackend
    ) -> nn.Sequential:
        if self.pool == "adaptive":
            return nn.Sequential(
                normalization(ch),
                nn.SiLU(),
                nn.AdaptiveAvgPool2d((1, 1)),
                zero_module(conv_nd(2, ch, self.out_channels, 1)),
                nn.Flatten(),
            )
        if self.pool == "attention":
            return nn.Sequential(
                normalization(ch),
                nn.SiLU(),
                AttentionPool2d(
                    final_size, ch, num_head_channels, self.out_channels, attention_backend=backend
                ),
            )
        if self.pool == "spatial":
            return nn.Sequential(
                nn.Linear(self.feature_size, SPATIAL_HIDDEN),
                nn.ReLU(),
                nn.Linear(SPATIAL_HIDDEN, self.out_channels),
            )
        return nn.Sequential(
            nn.Linear(self.feature_size, SPATIAL_HIDDEN),
            normalization(SPATIAL_HIDDEN),
            nn.SiLU(),
            nn.Linear(SPATIAL_HIDDEN, self.out_channels),
        )

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, out_channels)`` for the noisy images ``x`` at ``timesteps``."""
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        first_linear = self.time_embed[0]
        if not isinstance(first_linear, nn.Linear):
            raise TypeError("time_embed[0] must be an nn.Linear")
        weight_dtype = first_linear.weight.dtype
        compute = torch.float64 if weight_dtype == torch.float64 else torch.float32
        t_emb = timestep_embedding(timesteps, self.model_channels, dtype=compute).to(weight_dtype)
        spatial = self.pool in ("spatial", "spatial_v2")
        features: list[torch.Tensor] = []
        fp16 = self.use_fp16 and x.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.float16) if fp16 else nullcontext():
            emb: torch.Tensor = self.time_embed(t_emb)
            h = x
            for block in self.input_blocks:
                h = block(h, emb)
                if spatial:
                    features.append(h.to(x.dtype).mean(dim=(2, 3)))
            h = self.middle_block(h, emb)
        if spatial:
            features.append(h.to(x.dtype).mean(dim=(2, 3)))
            h = torch.cat(features, dim=-1)
        logits: torch.Tensor = self.out(h.to(x.dtype))
        return logits.to(x.dtype)
