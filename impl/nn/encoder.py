"""What the U-Net and the noisy-image classifier share: the size checks and the encoder's input blocks.

The classifier is the U-Net's encoder half, so both build the same input blocks in the same order (which
fixes their parameter names, the released checkpoints' layout, and the order in which initialisation
draws random numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from torch import nn

from impl.nn.layers import Downsample, conv_nd
from impl.nn.resblock import ResBlock, TimestepEmbedSequential

# (channels in, channels out, down) -> a residual block of the network's settings
ResBlockFactory = Callable[..., ResBlock]
# channels -> an attention block of the network's settings
AttentionFactory = Callable[[int], nn.Module]


def check_network_sizes(sizes: dict[str, int], channel_mult: Sequence[float]) -> None:
    """ValueError naming the first size that is not a positive integer, or a bad ``channel_mult``."""
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if len(channel_mult) == 0 or any(m <= 0 for m in channel_mult):
        raise ValueError(f"channel_mult must be a non-empty sequence of positive numbers, got {channel_mult}")


def encoder_input_blocks(
    *,
    in_channels: int,
    model_channels: int,
    channel_mult: Sequence[float],
    num_res_blocks: int,
    attention_resolutions: Collection[int],
    dims: int,
    conv_resample: bool,
    resblock_updown: bool,
    res_block: ResBlockFactory,
    attention: AttentionFactory,
) -> tuple[nn.ModuleList, list[int], int]:
    """The input blocks: a 3×3 conv, then per level ``num_res_blocks`` residual blocks (each followed by
    attention at the resolutions listed) and, between levels, a downsampling block.

    Returns the blocks, the output channels of each block (the U-Net's skip connections) and the final
    downsampling factor.
    """
    ch = int(channel_mult[0] * model_channels)
    blocks = nn.ModuleList([TimestepEmbedSequential([conv_nd(dims, in_channels, ch, 3, padding=1)])])
    channels = [ch]
    ds = 1
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            layers: list[nn.Module] = [res_block(ch, int(mult * model_channels))]
            ch = int(mult * model_channels)
            if ds in attention_resolutions:
                layers.append(attention(ch))
            blocks.append(TimestepEmbedSequential(layers))
            channels.append(ch)
        if level != len(channel_mult) - 1:
            down: nn.Module = (
                res_block(ch, ch, down=True)
                if resblock_updown
                else Downsample(ch, conv_resample, dims, out_channels=ch)
            )
            blocks.append(TimestepEmbedSequential([down]))
            channels.append(ch)
            ds *= 2
    return blocks, channels, ds
