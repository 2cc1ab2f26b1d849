"""Small building blocks of the U-Net: float32 GroupNorm, N-d convolutions, resampling."""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn
from torch.nn import functional as nnf

__all__ = [
    "Downsample",
    "GroupNorm32",
    "Upsample",
    "conv_nd",
    "normalization",
    "zero_module",
]

ConvNd = nn.Conv1d | nn.Conv2d | nn.Conv3d

NORM_GROUPS = 32

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def _check_dims(dims: int) -> None:
    if dims not in (1, 2, 3):
        raise ValueError(f"dims must be 1, 2 or 3, got {dims!r}")


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in at least float32 (statistics and affine map), cast back to the input dtype.

    Under bf16/fp16 autocast (or with half-precision activations) the normalisation is done in float32, as in
    the original; float64 inputs stay float64.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compute = torch.promote_types(x.dtype, torch.float32)
        weight = self.weight.to(compute) if self.weight is not None else None
        bias = self.bias.to(compute) if self.bias is not None else None
        out = nnf.group_norm(x.to(compute), self.num_groups, weight, bias, self.eps)
        return out.to(x.dtype)


def normalization(channels: int) -> GroupNorm32:
    """GroupNorm(32 groups, ``channels``) computed in float32 [SPEC §8]."""
    if channels % NORM_GROUPS != 0:
        raise ValueError(
            f"GroupNorm({NORM_GROUPS}) needs a channel count divisible by {NORM_GROUPS}, got {channels}; "
            "choose model_channels/channel_mult so that every level width is a multiple of 32"
        )
    return GroupNorm32(NORM_GROUPS, channels)


def conv_nd(
    dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
) -> ConvNd:
    """A 1-, 2- or 3-d convolution."""
    _check_dims(dims)
    if dims == 1:
        return nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
    if dims == 2:
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
    return nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)


def zero_module(module: ModuleT) -> ModuleT:
    """Set every parameter of ``module`` to zero (the zero-initialised output heads of [SPEC §8])."""
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    return module


def _resample_stride(dims: int) -> int | tuple[int, int, int]:
    """Factor-2 resampling over the last two spatial axes for 3-d data, over all axes otherwise."""
    return (1, 2, 2) if dims == 3 else 2


def _strided_conv3x3(dims: int, in_channels: int, out_channels: int) -> ConvNd:
    """A conv3×3 with padding 1 and the factor-2 resampling stride of :func:`_resample_stride`."""
    if dims == 3:
        return nn.Conv3d(in_channels, out_channels, 3, stride=(1, 2, 2), padding=1)
    return conv_nd(dims, in_channels, out_channels, 3, stride=2, padding=1)


class Downsample(nn.Module):
    """Halve the spatial size: stride-2 conv3×3 (``op``) when ``use_conv``, else average pooling."""

    def __init__(self, channels: int, use_conv: bool, dims: int = 2, out_channels: int | None = None) -> None:
        super().__init__()
        _check_dims(dims)
        self.channels = channels
        self.out_channels = out_channels if out_channels is not None else channels
        self.use_conv = use_conv
        self.dims = dims
        stride = _resample_stride(dims)
        self.op: nn.Module
        if use_conv:
            self.op = _strided_conv3x3(dims, channels, self.out_channels)
        else:
            if self.out_channels != channels:
                raise ValueError("Downsample without a conv cannot change the channel count")
            pool = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[dims]
            self.op = pool(kernel_size=stride, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.op(x)
        return out


class Upsample(nn.Module):
    """Double the spatial size: nearest-neighbour ×2, then conv3×3 (``conv``) when ``use_conv``."""

    def __init__(self, channels: int, use_conv: bool, dims: int = 2, out_channels: int | None = None) -> None:
        super().__init__()
        _check_dims(dims)
        self.channels = channels
        self.out_channels = out_channels if out_channels is not None else channels
        self.use_conv = use_conv
        self.dims = dims
        if use_conv:
            self.conv = conv_nd(dims, channels, self.out_channels, 3, padding=1)
        elif self.out_channels != channels:
            raise ValueError("Upsample without a conv cannot change the channel count")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dims == 3:
            x = nnf.interpolate(x, size=(x.shape[2], x.shape[3] * 2, x.shape[4] * 2), mode="nearest")
        else:
            x = nnf.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.use_conv:
            x = self.conv(x)
        return x
