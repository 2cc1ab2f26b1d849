"""The improved-diffusion U-Net with the paper's parameter names (SPEC §8, layouts in tests/nn/compat/)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
from torch import nn

from impl.nn.attention import (
    AttentionBackend,
    AttentionBlock,
    check_attention_backend,
    check_attention_order,
)
from impl.nn.classifier import AttentionPool2d
from impl.nn.embedding import timestep_embedding
from impl.nn.encoder import check_network_sizes, encoder_input_blocks
from impl.nn.layers import Upsample, conv_nd, normalization, zero_module
from impl.nn.recompute import run_segment
from impl.nn.resblock import ResBlock, TimestepEmbedSequential

__all__ = ["UNetModel", "set_attention_backend", "set_norm_recompute"]


class UNetModel(nn.Module):
    """The U-Net of Improved DDPM: ``forward(x, timesteps, y=None) -> Tensor`` [SPEC §8].

    Arguments keep the original names and meaning:

    - ``in_channels``, ``model_channels`` (base width C), ``out_channels``, ``num_res_blocks`` per level;
    - ``attention_resolutions``: downsample factors (1, 2, 4, …) at which attention blocks are used;
    - ``dropout``, ``channel_mult`` (width multiplier per level), ``conv_resample`` (learned conv in
      up/downsampling), ``dims`` (1, 2 or 3 spatial dims), ``num_classes`` (``None``: unconditional);
    - ``use_checkpoint`` (gradient checkpointing of every block), ``num_heads``, ``num_heads_upsample``
      (``-1``: same as ``num_heads``), ``use_scale_shift_norm``;
    - later refinements: ``num_head_channels`` (fixed width per head instead of a head count; ``-1``: off)
      and ``resblock_updown`` (resample with residual blocks instead of ``Downsample``/``Upsample``);
    - ``attention_backend``: ``"sdpa"`` (fast, default) or ``"naive"`` (the original einsum); both compute
      the same function and the choice is not stored in the state dict;
    - ``use_new_attention_order`` (guided-diffusion's name): split every ``qkv`` projection as
      ``(q|k|v, heads, C/heads)`` instead of the legacy ``(heads, q|k|v, C/heads)``
      (``impl.nn.attention``); the parameters are the same, the function differs, so a checkpoint must be
      run with the order it was trained with (the state dict does not record it).

    ``timesteps`` is a ``(B,)`` (or scalar) tensor of integer or float (rescaled) timesteps; ``y`` is a
    ``(B,)`` int64 tensor of labels when ``num_classes`` is set.  The output has the dtype of ``x``.
    """

    def __init__(
        self,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_resolutions: Collection[int],
        dropout: float = 0.0,
        channel_mult: Sequence[float] = (1, 2, 4, 8),
        conv_resample: bool = True,
        dims: int = 2,
        num_classes: int | None = None,
        use_checkpoint: bool = False,
        num_heads: int = 1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = False,
        *,
        num_head_channels: int = -1,
        resblock_updown: bool = False,
        attention_backend: str = "sdpa",
        use_new_attention_order: bool = False,
    ) -> None:
        super().__init__()
        check_network_sizes(
            {
                "in_channels": in_channels,
                "model_channels": model_channels,
                "out_channels": out_channels,
                "num_res_blocks": num_res_blocks,
            },
            channel_mult,
        )
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"num_classes must be None or a positive integer, got {num_classes}")
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        backend = check_attention_backend(attention_backend)
        new_order = check_attention_order(use_new_attention_order)

        self.in_channels = in_channels
        self.model_channels = model_channels
        self.out_channels = out_channels
        self.num_res_blocks = num_res_blocks
        self.attention_resolutions = frozenset(int(r) for r in attention_resolutions)
        self.dropout = dropout
        self.channel_mult = tuple(channel_mult)
        self.conv_resample = conv_resample
        self.dims = dims
        self.num_classes = num_classes
        self.use_checkpoint = use_checkpoint
        self.num_heads = num_heads
        self.num_heads_upsample = num_heads_upsample
        self.num_head_channels = num_head_channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.resblock_updown = resblock_updown
        self.use_new_attention_order = new_order

        emb_dim = model_channels * 4
        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.label_emb: nn.Embedding | None = (
            nn.Embedding(num_classes, emb_dim) if num_classes is not None else None
        )

        def res_block(ch_in: int, ch_out: int, *, up: bool = False, down: bool = False) -> ResBlock:
            return ResBlock(
                ch_in,
                emb_dim,
                dropout,
                out_channels=ch_out,
                dims=dims,
                use_checkpoint=use_checkpoint,
                use_scale_shift_norm=use_scale_shift_norm,
                up=up,
                down=down,
            )

        def attention(ch: int, heads: int) -> AttentionBlock:
            return AttentionBlock(
                ch,
                num_heads=heads,
                num_head_channels=num_head_channels,
                use_checkpoint=use_checkpoint,
                attention_backend=backend,
                use_new_attention_order=new_order,
            )

        self.input_blocks, skip_channels, ds = encoder_input_blocks(
            in_channels=in_channels,
            model_channels=model_channels,
            channel_mult=channel_mult,
            num_res_blocks=num_res_blocks,
            attention_resolutions=self.attention_resolutions,
            dims=dims,
            conv_resample=conv_resample,
            resblock_updown=resblock_updown,
            res_block=res_block,
            attention=lambda ch: attention(ch, num_heads),
        )
        ch = skip_channels[-1]
        first_ch = skip_channels[0]

        self.middle_block = TimestepEmbedSequential(
            [res_block(ch, ch), attention(ch, num_heads), res_block(ch, ch)]
        )

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers: list[nn.Module] = [res_block(ch + skip_channels.pop(), int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in self.attention_resolutions:
                    layers.append(attention(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(
                        res_block(ch, ch, up=True)
                        if resblock_updown
                        else Upsample(ch, conv_resample, dims, out_channels=ch)
                    )
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(layers))

        self.out = nn.Sequential(
            normalization(ch), nn.SiLU(), zero_module(conv_nd(dims, first_ch, out_channels, 3, padding=1))
        )
        # Runtime switch (not a checkpoint flag), see ``recompute_norms``.
        self.recompute_out_norm = False

    @property
    def attention_backend(self) -> AttentionBackend:
        """The attention backend of the blocks (``"sdpa"`` or ``"naive"``)."""
        for module in self.modules():
            if isinstance(module, AttentionBlock):
                return module.attention_backend
        return "sdpa"

    @attention_backend.setter
    def attention_backend(self, backend: str) -> None:
        set_attention_backend(self, backend)

    @property
    def recompute_norms(self) -> bool:
        """Whether the GroupNorm → scale-shift → SiLU → dropout segments are recomputed in the backward pass
        instead of stored (``impl.nn.recompute``: same values, less activation memory)."""
        return self.recompute_out_norm

    @recompute_norms.setter
    def recompute_norms(self, enabled: bool) -> None:
        set_norm_recompute(self, enabled)

    @property
    def downsample_factor(self) -> int:
        """``2^(levels − 1)``: spatial sizes must be divisible by it."""
        return int(2 ** (len(self.channel_mult) - 1))

    def forward(
        self, x: torch.Tensor, timesteps: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict the network output (ε and optionally the variance channels) for ``x`` at ``timesteps``."""
        if x.ndim != self.dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape (B, {self.in_channels}, *{self.dims} spatial dims), got {tuple(x.shape)}"
            )
        factor = self.downsample_factor
        resampled = x.shape[3:] if self.dims == 3 else x.shape[2:]
        if any(s % factor for s in resampled):
            raise ValueError(
                f"spatial size {tuple(x.shape[2:])} must be divisible by 2^(len(channel_mult)-1) = {factor}"
            )
        if (y is None) != (self.label_emb is None):
            raise ValueError(
                "y (class labels) must be given if and only if the model is class-conditional "
                f"(num_classes={self.num_classes})"
            )
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        first_linear = self.time_embed[0]
        if not isinstance(first_linear, nn.Linear):
            raise TypeError("time_embed[0] must be an nn.Linear")
        weight_dtype = first_linear.weight.dtype
        compute = torch.float64 if weight_dtype == torch.float64 else torch.float32
        t_emb = timestep_embedding(timesteps, self.model_channels, dtype=compute).to(weight_dtype)
        emb: torch.Tensor = self.time_embed(t_emb)
        if self.label_emb is not None and y is not None:
            if y.shape != (x.shape[0],):
                raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
            emb = emb + self.label_emb(y)

        skips: list[torch.Tensor] = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        out_norm, out_act, out_conv = self.out
        h = run_segment(lambda v: out_act(out_norm(v)), h, recompute=self.recompute_out_norm)
        out: torch.Tensor = out_conv(h)
        return out.to(x.dtype)


def set_attention_backend(model: nn.Module, backend: str) -> None:
    """Switch every :class:`AttentionBlock` (and a classifier's :class:`AttentionPool2d`) inside ``model``
    to ``backend`` (``"sdpa"`` or ``"naive"``)."""
    checked = check_attention_backend(backend)
    for module in model.modules():
        if isinstance(module, (AttentionBlock, AttentionPool2d)):
            module.attention_backend = checked


def set_norm_recompute(model: nn.Module, enabled: bool) -> None:
    """Turn selective recomputation of the norm/SiLU segments on or off in every block of ``model``
    (``impl.nn.recompute``): the values and gradients do not change, the stored activations shrink."""
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be True or False, got {enabled!r}")
    for module in model.modules():
        if isinstance(module, (ResBlock, AttentionBlock)):
            module.recompute_norms = enabled
        elif isinstance(module, UNetModel):
            module.recompute_out_norm = enabled
