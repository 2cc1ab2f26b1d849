"""Drawing training timesteps reproducibly from a schedule sampler [S24–S26].

The trainer passes its per-step generator to the sampler (``impl.diffusion`` samplers accept
``generator=``), so the draw is a function of (seed, step), and it feeds a loss-aware sampler with the
(t, loss) pairs of the whole global batch (gathered across ranks) as device tensors: no host sync.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch


def is_loss_aware(sampler: Any) -> bool:
    return hasattr(sampler, "update_with_all_losses")


def draw_timesteps(
    sampler: Any,
    num_timesteps: int,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``t ~ p`` and importance weights ``w_t = 1/(T·p_t)`` [S24]; no sampler means uniform, ``w = 1`` [S25].

    A sampler whose ``sample`` takes ``generator=`` draws itself; one exposing only ``weights()`` (the
    original API) is drawn from here by ``torch.multinomial``.
    """
    if sampler is None:
        t = torch.randint(0, num_timesteps, (batch_size,), generator=generator, device=device)
        return t, torch.ones(batch_size, dtype=torch.float32, device=device)
    if "generator" in inspect.signature(sampler.sample).parameters:
        t, w = sampler.sample(batch_size, device, generator=generator)
        return t.to(torch.int64), w.to(torch.float32)
    weights = np.asarray(sampler.weights(), dtype=np.float64)
    if weights.shape != (num_timesteps,):
        raise ValueError(f"schedule sampler weights must have shape ({num_timesteps},), got {weights.shape}")
    p = torch.as_tensor(weights / weights.sum(), dtype=torch.float64, device=device)
    t = torch.multinomial(p, batch_size, replacement=True, generator=generator)
    return t, (1.0 / (num_timesteps * p[t])).to(torch.float32)


def feed_losses(sampler: Any, t_global: torch.Tensor, losses_global: torch.Tensor) -> None:
    """Give a loss-aware sampler every (t, loss) pair of the global batch, in rank order [S26]."""
    if sampler is not None and is_loss_aware(sampler):
        sampler.update_with_all_losses(t_global.detach(), losses_global.detach().to(torch.float64))


def sampler_state(sampler: Any) -> dict[str, torch.Tensor]:
    """The sampler's loss history as tensors for the checkpoint (empty for stateless samplers).

    Samplers with a ``state_dict()`` (``LossSecondMomentResampler``) are saved through it; other
    user-supplied samplers in the original style through their ``_loss_history``/``_loss_counts``.
    """
    if sampler is not None and callable(getattr(sampler, "state_dict", None)):
        return {k: torch.as_tensor(v).detach() for k, v in sampler.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for attr in ("_loss_history", "_loss_counts"):
        if sampler is not None and hasattr(sampler, attr):
            out[attr] = torch.as_tensor(getattr(sampler, attr)).detach()
    return out


def load_sampler_state(sampler: Any, state: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`sampler_state` saved, keeping the sampler's own type, dtype and device."""
    if sampler is None or not state:
        return
    if callable(getattr(sampler, "load_state_dict", None)):
        sampler.load_state_dict(state)
        return
    for attr, value in state.items():
        if not hasattr(sampler, attr):
            raise ValueError(f"schedule sampler {type(sampler).__name__} has no state {attr!r} to restore")
        current = getattr(sampler, attr)
        if tuple(np.shape(current)) != tuple(value.shape):
            raise ValueError(
                f"schedule sampler state {attr!r} has shape {tuple(value.shape)}, "
                f"expected {tuple(np.shape(current))} (different diffusion_steps?)"
            )
        if isinstance(current, torch.Tensor):
            setattr(sampler, attr, value.to(device=current.device, dtype=current.dtype))
        else:
            setattr(sampler, attr, value.numpy().astype(np.asarray(current).dtype))
