"""Shared helpers of the U-Net tests: compat layouts, tiny models, perturbing the zero-initialised heads."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from impl.factory import str2bool
from impl.nn import UNetModel

COMPAT_DIR = Path(__file__).parent / "compat"
COMPAT_LAYOUTS = ("unet_cifar10_32", "unet_imagenet64", "unet_imagenet64_cond")


@dataclass(frozen=True)
class Layout:
    """A released model's state-dict layout: the flags it was built with, names/shapes in order, counts."""

    flags: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]
    num_tensors: int
    num_parameters: int


def _flag_value(text: str) -> Any:
    if text in ("True", "False"):
        return str2bool(text)
    try:
        return int(text)
    except ValueError:
        return float(text)


def read_layout(name: str) -> Layout:
    """Parse ``compat/<name>.tsv``: the flags line, the ``N tensors, P parameters`` line, then the rows."""
    lines = (COMPAT_DIR / f"{name}.tsv").read_text().splitlines()
    flag_words = shlex.split(lines[0].split("built with:", 1)[1])
    flags = {
        flag_words[i].removeprefix("--"): _flag_value(flag_words[i + 1]) for i in range(0, len(flag_words), 2)
    }
    count_words = lines[1].lstrip("# ").replace(",", "").split()
    shapes: dict[str, tuple[int, ...]] = {}
    for line in lines[2:]:
        key, shape = line.split("\t")
        shapes[key] = tuple(int(d) for d in shape.split("x"))
    return Layout(flags, shapes, int(count_words[0]), int(count_words[2]))


def tiny_unet(**overrides: Any) -> UNetModel:
    """A small U-Net (32 base channels, 2 levels, attention at the 2nd level) for fast CPU tests."""
    kwargs: dict[str, Any] = {
        "in_channels": 3,
        "model_channels": 32,
        "out_channels": 6,
        "num_res_blocks": 1,
        "attention_resolutions": (2,),
        "channel_mult": (1, 2),
        "num_heads": 2,
        "use_scale_shift_norm": True,
    }
    kwargs.update(overrides)
    return UNetModel(**kwargs)


def perturb_zero_parameters(model: nn.Module, seed: int = 0, std: float = 0.05) -> list[str]:
    """Fill every all-zero parameter (the zero-initialised heads) with N(0, std²); returns their names."""
    gen = torch.Generator().manual_seed(seed)
    names = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not torch.any(p != 0):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
                names.append(name)
    return names


def randomize_all_parameters(model: nn.Module, seed: int = 0, std: float = 0.05) -> None:
    """Every parameter becomes N(0, std²) noise, GroupNorm scales 1 + noise (all non-zero, well scaled)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) * std
                is_norm_scale = isinstance(module, nn.GroupNorm) and name == "weight"
                p.copy_(noise + 1.0 if is_norm_scale else noise)


def inputs(
    batch: int = 2,
    channels: int = 3,
    size: tuple[int, ...] = (8, 8),
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``x`` and float (rescaled-looking) timesteps for a forward pass."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, channels, *size), generator=gen, dtype=torch.float64).to(dtype)
    t = torch.rand((batch,), generator=gen, dtype=torch.float64).to(dtype) * 999.0
    return x, t
