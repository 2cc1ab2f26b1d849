"""The AdamW of the trainer, in the implementation ``TrainConfig.optimizer_impl`` names."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

OPTIMIZER_IMPLS: tuple[str, ...] = ("auto", "fused", "foreach", "for-loop")


def fused_adamw_devices() -> tuple[str, ...]:
    """Device types with a fused AdamW kernel in this PyTorch build."""
    from torch.optim import optimizer as optimizer_module

    lister = getattr(optimizer_module, "_get_fused_kernels_supported_devices", None)
    if lister is None:
        return ("cuda",)
    return tuple(str(name) for name in lister())


def check_optimizer_impl(impl: str) -> None:
    if impl not in OPTIMIZER_IMPLS:
        raise ValueError(f"optimizer_impl must be one of {OPTIMIZER_IMPLS}, got {impl!r}")


def build_adamw(
    params: Sequence[nn.Parameter], impl: str, device: torch.device, *, lr: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over ``params`` with the update kernels of ``impl``.

    ``auto``: fused on CUDA, otherwise PyTorch's own default (foreach for GPU tensors, the per-parameter
    loop on the CPU).  ``fused``: one fused kernel (a ValueError on a device type without one);
    ``foreach``: ``torch._foreach_*`` over all parameters; ``for-loop``: one parameter at a time.
    """
    check_optimizer_impl(impl)
    fused: bool | None = None
    foreach: bool | None = None
    if impl == "auto":
        fused = device.type == "cuda"
    elif impl == "fused":
        supported = fused_adamw_devices()
        if device.type not in supported:
            raise ValueError(
                f"optimizer_impl='fused' needs a device with a fused AdamW kernel {supported}, got "
                f"{device.type!r}; use 'auto', 'foreach' or 'for-loop'"
            )
        fused = True
    elif impl == "foreach":
        foreach = True
    else:
        foreach = False
    return torch.optim.AdamW(list(params), lr=lr, weight_decay=weight_decay, fused=fused, foreach=foreach)


def match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor its parameter's memory layout (values unchanged).

    ``Optimizer.load_state_dict`` returns contiguous NCHW moments; a channels-last model wants them in its
    own layout so the fused/foreach kernels see matching strides.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param)
            if not state:
                continue
            for key, value in list(state.items()):
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.dim() == 4:
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
