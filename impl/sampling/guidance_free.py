"""Classifier-free guidance [S50]–[S52]: a model wrapper the sampling loops call like the network.

``ClassifierFreeGuidance(model, guidance_scale, null_label)`` runs the conditional branch (labels ``y``)
and the unconditional branch (the null label ``∅``) of one network in ONE batched call (the batch
concatenated ``[x; x]`` with labels ``[y; ∅]``, the output split in halves) and returns
ε̂_w = ε̂(x, ∅) + w·(ε̂(x, y) − ε̂(x, ∅)) [S50]; with a learned Σ (2C output channels) the variance channels
are the conditional branch's [S52].  w = 1 calls the conditional branch alone and w = 0 the null-label
branch alone, so those two are the plain conditional / unconditional sampler bit for bit.

The combination acts on the raw network output, whatever it parameterises (ε, x₀, v or μ): each of those is
affine in ε̂ at fixed (x_t, t), and an affine map commutes with a combination whose weights (1 − w, w) sum
to 1, so guiding the output is guiding ε̂.  The wrapper is an ``nn.Module`` so that it composes with the
loops' other options: a classifier-guidance ``cond_fn`` sees the same ``model_kwargs`` (the real labels),
a ``CompiledStepRunner`` traces through it, and it wraps an ``AutocastModel`` (the combination then runs
in float32).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from impl.diffusion.types import Model

__all__ = [
    "ClassifierFreeGuidance",
    "check_guidance_scale",
    "guided_eps",
    "guided_model_output",
    "guided_network",
]


def check_guidance_scale(guidance_scale: float, name: str = "guidance_scale") -> float:
    """``guidance_scale`` as a float; a ValueError naming ``name`` unless it is a finite number."""
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, int | float):
        raise ValueError(
            f"{name} must be a finite number (1: conditional, 0: unconditional), got {guidance_scale!r}"
        )
    if not math.isfinite(guidance_scale):
        raise ValueError(
            f"{name} must be a finite number (1: conditional, 0: unconditional), got {guidance_scale}"
        )
    return float(guidance_scale)


def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """ε̂_w = ε̂(x, ∅) + w·(ε̂(x, y) − ε̂(x, ∅)) [S50]."""
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def guided_model_output(
    cond_output: torch.Tensor, uncond_output: torch.Tensor, guidance_scale: float, channels: int
) -> torch.Tensor:
    """The first ``channels`` channels by [S50]; any variance channels from the conditional branch [S52]."""
    if cond_output.shape != uncond_output.shape:
        raise ValueError(
            f"uncond_output: expected shape {tuple(cond_output.shape)} (that of cond_output), "
            f"got {tuple(uncond_output.shape)}"
        )
    if cond_output.ndim < 2 or cond_output.shape[1] not in (channels, 2 * channels):
        raise ValueError(
            f"the model output must have {channels} or {2 * channels} channels (x's C, twice that with a "
            f"learned variance), got shape {tuple(cond_output.shape)}"
        )
    mean = guided_eps(cond_output[:, :channels], uncond_output[:, :channels], guidance_scale)
    if cond_output.shape[1] == channels:
        return mean
    return torch.cat([mean, cond_output[:, channels:]], dim=1)


def _doubled(value: Any, batch: int) -> Any:
    """A per-sample tensor kwarg repeated for the second half of the batch; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == batch:
        return torch.cat([value, value])
    return value


class ClassifierFreeGuidance(nn.Module):
    """``model`` guided by its own null-label prediction at scale ``guidance_scale`` (w) [S50].

    Called as ``wrapper(x, t, y=labels, **model_kwargs)`` like the network; ``null_label`` is the index of
    the learned null label (``num_classes`` of a run trained with ``class_dropout_prob > 0``).  Other
    per-sample tensor kwargs (leading size B) are repeated for the unconditional half.
    """

    def __init__(self, model: Model, guidance_scale: float, null_label: int) -> None:
        super().__init__()
        if isinstance(null_label, bool) or not isinstance(null_label, int) or null_label < 1:
            raise ValueError(f"null_label must be an integer >= 1 (num_classes), got {null_label!r}")
        self.model = model
        self.guidance_scale = check_guidance_scale(guidance_scale)
        self.null_label = null_label

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> Any:
        if y is None:
            raise ValueError("classifier-free guidance needs class labels y in model_kwargs")
        w = self.guidance_scale
        null = torch.full_like(y, self.null_label)
        if w == 1.0:
            return self.model(x, t, y=y, **kwargs)
        if w == 0.0:
            return self.model(x, t, y=null, **kwargs)
        batch = x.shape[0]
        both_t = t if t.ndim == 0 else torch.cat([t, t])
        doubled = {name: _doubled(value, batch) for name, value in kwargs.items()}
        out = self.model(torch.cat([x, x]), both_t, y=torch.cat([y, null]), **doubled)
        return guided_model_output(out[:batch], out[batch:], w, x.shape[1])


def guided_network(model: nn.Module, guidance_scale: float | None, num_classes: int | None) -> nn.Module:
    """``model`` itself without a scale, else ``model`` guided at ``guidance_scale`` with the null label
    ``num_classes`` (that of a run trained with ``class_dropout_prob > 0``)."""
    if guidance_scale is None:
        return model
    if num_classes is None:
        raise ValueError("guidance_scale needs a class-conditional model (num_classes is None)")
    return ClassifierFreeGuidance(model, guidance_scale, num_classes)
