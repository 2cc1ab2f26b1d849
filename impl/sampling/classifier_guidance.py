"""Classifier guidance [S48]: the `cond_fn` that steers a sampler towards a class through a classifier.

`classifier_cond_fn(classifier, scale)` returns the guidance gradient s·∇_x log softmax(classifier(x_t,
t_m))_y, y taken from ``model_kwargs["y"]``, for the hooks of §7 (`GaussianDiffusion.condition_mean`: the
ancestral mean μ + Σ·g; `condition_score`: DDIM's ε̂ − √(1 − ᾱ_t)·g).  The hooks call it with the model's
own timesteps t_m, so on a respaced chain the classifier sees the original steps, like the network.

The name says "classifier" guidance to keep it apart from classifier-free guidance (`guidance_free`),
which acts through a model wrapper instead of a gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from impl.diffusion.types import CondFn

__all__ = [
    "WithoutLabels",
    "check_classifier_scale",
    "classifier_cond_fn",
    "guidance_cond_fn",
]

Classifier = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A noisy-image classifier: ``classifier(x_t, t_m) -> logits (B, K)``."""


def check_classifier_scale(scale: float, name: str = "classifier_scale") -> float:
    """``scale`` as a float if it is a finite number >= 0 (0: unguided), else a ValueError naming ``name``."""
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (0: unguided sampling), got {scale!r}")
    return float(scale)


def classifier_cond_fn(classifier: Classifier, scale: float) -> CondFn:
    """The guidance gradient g = s·∇_x log softmax(classifier(x_t, t_m))_y [S48] as a `CondFn`.

    Called as ``cond_fn(x_t, t_m, y=labels, **other_model_kwargs)`` (the other kwargs are the model's and
    are ignored).  The gradient is taken by autograd under ``torch.enable_grad()`` on a detached copy of
    x_t (the sampling loops run under ``no_grad``); the log-softmax runs in at least float32 whatever
    dtype the classifier's autocast returns (float64 stays float64), and g comes back in x_t's dtype.  Each
    sample's gradient is its own: the summed log-probabilities of a batch differentiate sample by sample
    for a classifier without cross-sample operations (eval-mode GroupNorm, attention within an image).
    """
    s = check_classifier_scale(scale, "scale")

    def cond_fn(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        if y is None:
            raise ValueError("classifier guidance needs the target classes as model_kwargs['y']")
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            logits = classifier(x_in, t)
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
            log_probs = torch.log_softmax(logits, dim=-1)
            selected = log_probs.gather(1, y.reshape(-1, 1).to(device=log_probs.device, dtype=torch.long))
            (grad,) = torch.autograd.grad(selected.sum(), x_in)
        return (grad * s).to(x.dtype)

    return cond_fn


def guidance_cond_fn(classifier: Classifier, scale: float) -> CondFn | None:
    """:func:`classifier_cond_fn`, or None at scale 0: unguided sampling exactly (a zero gradient would
    still recompute DDIM's x̂_0 from ε̂ and so differ from it in the last bits)."""
    s = check_classifier_scale(scale)
    return None if s == 0.0 else classifier_cond_fn(classifier, s)


class WithoutLabels(nn.Module):
    """An unconditional network called with the guidance labels: drops ``y`` from its keyword arguments
    (they are the classifier's, through the cond_fn), passes the rest on unchanged."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        kwargs.pop("y", None)
        out: torch.Tensor = self.inner(x, t, **kwargs)
        return out
