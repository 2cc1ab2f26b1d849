"""Drawing training timesteps reproducibly from a schedule sampler's distribution [S24–S26].

The schedule samplers of ``impl.diffusion`` expose their distribution (``weights()``); the trainer draws
``t`` itself from a per-step generator so that the draw is a function of (seed, step), and it feeds the loss
history with the (t, loss) pairs of the whole global batch (gathered across ranks).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def sampler_probabilities(sampler: Any, num_timesteps: int) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """The sampler's current ``p_t`` normalised to sum 1, or None when it is uniform [S25]."""
    if sampler is None or not is_loss_aware(sampler):
        return None
    weights = np.asarray(sampler.weights(), dtype=np.float64)
    if weights.shape != (num_timesteps,):
        raise ValueError(f"schedule sampler weights must have shape ({num_timesteps},), got {weights.shape}")
    normalised: np.ndarray[Any, np.dtype[np.float64]] = weights / weights.sum()
    return normalised


def is_loss_aware(sampler: Any) -> bool:
    return hasattr(sampler, "update_with_all_losses") or hasattr(sampler, "update_with_local_losses")


def draw_timesteps(
    probs: np.ndarray[Any, np.dtype[np.float64]] | None,
    num_timesteps: int,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``t ~ p`` and importance weights ``w_t = 1/(T·p_t)`` [S24]; uniform ``p`` gives ``w = 1`` [S25]."""
    if probs is None:
        t = torch.randint(0, num_timesteps, (batch_size,), generator=generator, device=device)
        return t, torch.ones(batch_size, dtype=torch.float32, device=device)
    p = torch.as_tensor(probs, dtype=torch.float64, device=device)
    t = torch.multinomial(p, batch_size, replacement=True, generator=generator)
    weights = (1.0 / (num_timesteps * p[t])).to(torch.float32)
    return t, weights


def feed_losses(sampler: Any, t_global: torch.Tensor, losses_global: torch.Tensor) -> None:
    """Give the loss-aware sampler every (t, loss) pair of the global batch [S26] (one host transfer)."""
    if sampler is None or not is_loss_aware(sampler):
        return
    ts = t_global.detach().cpu()
    ls = losses_global.detach().to(torch.float64).cpu()
    if hasattr(sampler, "update_with_all_losses"):
        sampler.update_with_all_losses(ts.tolist(), ls.tolist())
    else:
        # The sampler's own method all-gathers when a process group exists; our pairs are already global,
        # so this branch is only valid for samplers that do not gather.
        sampler.update_with_local_losses(ts, ls)


def sampler_state(sampler: Any) -> dict[str, torch.Tensor]:
    """The sampler's history as tensors for the checkpoint (empty for stateless samplers)."""
    if sampler is None:
        return {}
    if hasattr(sampler, "state_dict"):
        state = sampler.state_dict()
        return {k: torch.as_tensor(np.asarray(v)) for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    for attr in ("_loss_history", "_loss_counts"):
        if hasattr(sampler, attr):
            out[attr] = torch.as_tensor(np.asarray(getattr(sampler, attr)))
    return out


def load_sampler_state(sampler: Any, state: dict[str, torch.Tensor]) -> None:
    if sampler is None or not state:
        return
    if hasattr(sampler, "load_state_dict"):
        sampler.load_state_dict({k: v.numpy() for k, v in state.items()})
        return
    for attr, value in state.items():
        if not hasattr(sampler, attr):
            raise ValueError(f"schedule sampler {type(sampler).__name__} has no state {attr!r} to restore")
        current = getattr(sampler, attr)
        restored = value.numpy().astype(np.asarray(current).dtype)
        if np.asarray(current).shape != restored.shape:
            raise ValueError(
                f"schedule sampler state {attr!r} has shape {restored.shape}, "
                f"expected {np.asarray(current).shape}"
            )
        setattr(sampler, attr, restored)
