"""Exponential moving averages of the parameters at one or more rates, updated with fused foreach ops."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class EMA:
    """Shadow copies of ``model``'s parameters, one list per rate.

    Update [per rate r]: ``ema ← r·ema + (1 − r)·θ`` = ``lerp(ema, θ, 1 − r)``, done for all tensors of a rate
    in one ``torch._foreach_lerp_`` call.
    """

    def __init__(self, model: nn.Module, rates: tuple[float, ...]) -> None:
        self.rates = tuple(float(r) for r in rates)
        self._names = [name for name, _ in model.named_parameters()]
        params = [p.detach() for p in model.parameters()]
        self.shadows: dict[float, list[torch.Tensor]] = {
            rate: [p.clone() for p in params] for rate in self.rates
        }

    @torch.no_grad()
    def update(self, params: list[torch.Tensor], decays: Mapping[float, float] | None = None) -> None:
        """Move every shadow toward ``params`` (the live parameters, same order as ``named_parameters``).

        ``decays`` (rate → decay used this step, e.g. :func:`warmup_decay`) replaces the fixed rates.
        """
        sources = [p.detach() for p in params]
        for rate, shadow in self.shadows.items():
            decay = rate if decays is None else decays[rate]
            if decay == 0.0:
                torch._foreach_copy_(shadow, sources)
            else:
                torch._foreach_lerp_(shadow, sources, 1.0 - decay)

    def state_dict(self, model: nn.Module, rate: float) -> dict[str, torch.Tensor]:
        """A full model state dict whose parameters are the shadow at ``rate`` (buffers copied from model)."""
        state = {k: v.detach() for k, v in model.state_dict().items()}
        for name, tensor in zip(self._names, self.shadows[rate], strict=True):
            state[name] = tensor
        return state

    @torch.no_grad()
    def load_state_dict(self, rate: float, state: dict[str, torch.Tensor]) -> None:
        """Restore the shadow at ``rate`` from a state dict written by :meth:`state_dict`."""
        missing = [n for n in self._names if n not in state]
        if missing:
            raise ValueError(f"EMA state for rate {rate} lacks parameters {missing[:5]}")
        for name, tensor in zip(self._names, self.shadows[rate], strict=True):
            src = state[name]
            if src.shape != tensor.shape:
                raise ValueError(
                    f"EMA state for rate {rate}: {name} has shape {tuple(src.shape)}, "
                    f"model expects {tuple(tensor.shape)}"
                )
            tensor.copy_(src)

    @torch.no_grad()
    def copy_to(self, model: nn.Module, rate: float) -> None:
        """Write the shadow at ``rate`` into ``model``'s parameters (e.g. a separate sampling copy)."""
        torch._foreach_copy_([p.detach() for p in model.parameters()], self.shadows[rate])


def warmup_decay(rate: float, step: int, *, inv_gamma: float, power: float) -> float:
    """EMA warm-up: ``decay = min(rate, 1 − (1 + step/inv_gamma)^(−power))`` at update ``step`` (0-based).

    The schedule diffusers and k-diffusion use: the average forgets its random start quickly (decay 0 at the
    first update) and reaches ``rate`` after about ``inv_gamma · (1 − rate)^(−1/power)`` updates.
    """
    if not inv_gamma > 0.0:
        raise ValueError(f"ema_inv_gamma must be > 0, got {inv_gamma}")
    if not power > 0.0:
        raise ValueError(f"ema_power must be > 0, got {power}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    decay: float = 1.0 - (1.0 + step / inv_gamma) ** (-power)
    return min(rate, decay)
