"""The per-sample loss the trainer differentiates, and how ``compile=True`` compiles it.

``compile_scope="model"`` compiles the network alone; ``"loss"`` compiles :func:`per_sample_loss_fn`, so
q_sample, the network and the whole diffusion loss are one graph (docs/training.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

from impl.train.config import TrainConfig

__all__ = ["Diffusion", "LossFn", "compile_with", "per_sample_loss_fn", "warm_device_caches"]


class Diffusion(Protocol):
    """What the trainer needs of a diffusion (``impl.diffusion.GaussianDiffusion`` satisfies it)."""

    num_timesteps: int

    def training_losses(
        self,
        model: Any,
        x_start: torch.Tensor,
        t: torch.Tensor,
        model_kwargs: dict[str, Any] | None = None,
        noise: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]: ...


# The per-sample losses of (x_0, t, ε, model_kwargs): {"loss": (B,), and "mse" / "vb" where they apply}.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]], dict[str, torch.Tensor]]

_Compilable = TypeVar("_Compilable")


def per_sample_loss_fn(diffusion: Diffusion, model: nn.Module) -> LossFn:
    """The function ``compile_scope="loss"`` compiles: ``diffusion.training_losses(model, x, t, ...)``
    with ``model`` (the autocast wrapper of the network) inside, so q_sample, the network and the whole
    loss (L_simple / L_vlb / L_hybrid [S21]–[S23]) are traced as one graph."""

    def losses(
        x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, model_kwargs: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        return diffusion.training_losses(model, x_start, t, model_kwargs=model_kwargs, noise=noise)

    return losses


def warm_device_caches(diffusion: Diffusion, x: torch.Tensor) -> None:
    """``diffusion.prepare_device_caches(x)`` where the diffusion has it (``GaussianDiffusion`` and
    ``SpacedDiffusion`` do): builds the lazily cached device tables before a compiled loss is traced, so
    the second call does not recompile.  A diffusion without such caches needs nothing."""
    prepare = getattr(diffusion, "prepare_device_caches", None)
    if prepare is not None:
        prepare(x)


def compile_with(config: TrainConfig, target: _Compilable) -> _Compilable:
    """``torch.compile(target)`` on ``config.compile_backend`` and ``config.compile_mode`` ("" = unset);
    never ``fullgraph``: DDP's forward (its reducer calls) breaks the graph, and its network is split at
    the gradient buckets."""
    mode = config.compile_mode or None
    compiled: _Compilable = torch.compile(  # type: ignore[call-overload]
        target, backend=config.compile_backend, mode=mode
    )
    return compiled
