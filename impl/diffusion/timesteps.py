"""Timestep sampling on tensors [S24]–[S26]: probabilities, inverse-CDF draws, importance weights and the
vectorised loss-history update of the loss-second-moment sampler (no per-element host work)."""

from __future__ import annotations

import torch

__all__ = [
    "importance_weights",
    "loss_second_moment_probs",
    "sample_timesteps",
    "uniform_timestep_probs",
    "update_loss_history",
]


def uniform_timestep_probs(num_timesteps: int, device: torch.device | None = None) -> torch.Tensor:
    """p_t = 1/T [S25], float64 (T,)."""
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    return torch.full((num_timesteps,), 1.0 / num_timesteps, dtype=torch.float64, device=device)


def importance_weights(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """w_t = 1/(T·p_t) [S24], so that E_{t∼p}[w_t L_t] = mean_t L_t."""
    return 1.0 / (p.shape[0] * p.index_select(0, t.reshape(-1)))


def sample_timesteps(p: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draws t = min{i : u < F_i}, F the cumulative sum of p/Σp [S24]; u in [0, 1)."""
    cdf = torch.cumsum(p / p.sum(), dim=0)
    index = torch.searchsorted(cdf, uniforms.to(cdf.dtype), right=True)
    return index.clamp(max=p.shape[0] - 1)


def loss_second_moment_probs(
    history: torch.Tensor, counts: torch.Tensor, uniform_prob: float = 0.001
) -> torch.Tensor:
    """p_t ∝ √mean(L_t²), mixed (1 − u)p + u/T, or uniform until every t has a full history [S26]."""
    num_timesteps, history_per_term = history.shape
    moment = torch.sqrt(torch.mean(history.to(torch.float64) ** 2, dim=-1))
    probs = moment / moment.sum()
    probs = probs * (1.0 - uniform_prob) + uniform_prob / num_timesteps
    warmed_up = torch.all(counts == history_per_term)
    uniform = torch.full_like(probs, 1.0 / num_timesteps)
    return torch.where(warmed_up, probs, uniform)


def update_loss_history(
    history: torch.Tensor,
    counts: torch.Tensor,
    t: torch.Tensor,
    losses: torch.Tensor,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Append each (t, loss) in order to the per-t history of the last K losses (oldest first) [S26].

    Equal to appending the pairs one by one: a step whose history is full drops its oldest entry.
    Pairs with `valid` False are ignored (padding of unequal all-gathered batches).  Vectorised: each
    pair's rank among the pairs of its timestep decides its slot, so no per-element host work is done.
    Every intermediate has a shape fixed by (T, K, number of pairs): the update traces into a single
    `torch.compile` graph and issues no host synchronisation.
    Returns new (history, counts); the inputs are not modified.
    """
    num_timesteps, k = history.shape
    device = history.device
    t = t.reshape(-1).to(device=device, dtype=torch.long)
    losses = losses.reshape(-1).to(device=device, dtype=history.dtype)
    if valid is None:
        valid = torch.ones_like(t, dtype=torch.bool)
    valid = valid.reshape(-1).to(device)
    # Invalid pairs go to a scratch row `num_timesteps`, dropped at the end.
    rows = torch.where(valid, t, torch.full_like(t, num_timesteps))
    # Arrivals per row, counted into a fixed (T + 1,) tensor (no data-dependent shape, unlike bincount,
    # so the update traces into one graph and can be captured in a CUDA graph); integer adds are exact.
    arrivals = torch.zeros(num_timesteps + 1, dtype=torch.long, device=device).index_add_(
        0, rows, torch.ones_like(rows)
    )
    group_start = torch.cumsum(arrivals, dim=0) - arrivals
    # A stable sort keeps the pairs of one timestep in arrival order: position − group start = rank.
    order = torch.sort(rows, stable=True).indices
    rank_sorted = torch.arange(rows.shape[0], device=device) - group_start.index_select(0, rows[order])
    rank = torch.empty_like(rank_sorted).scatter_(0, order, rank_sorted)

    old_counts = torch.cat(
        [counts.to(device=device, dtype=torch.long), torch.zeros(1, dtype=torch.long, device=device)]
    )
    total = old_counts + arrivals
    shift = (total - k).clamp(min=0)
    # Old entries move left by `shift`; those shifted out are dropped.
    slots = torch.arange(k, device=device)
    source = slots.unsqueeze(0) + shift.unsqueeze(1)
    keep_old = source < old_counts.unsqueeze(1)
    padded = torch.cat([history, torch.zeros(1, k, dtype=history.dtype, device=device)], dim=0)
    gathered = torch.gather(padded, 1, source.clamp(max=k - 1))
    new_history = torch.where(keep_old, gathered, torch.zeros_like(gathered))
    # New entries land at count + rank − shift; those already shifted out go to the scratch row T, which
    # is dropped (so the result is a row slice: contiguous, with the input's layout).
    slot = old_counts[rows] + rank - shift[rows]
    dropped = slot < 0
    target_rows = torch.where(dropped, torch.full_like(rows, num_timesteps), rows)
    target_slots = torch.where(dropped, torch.zeros_like(slot), slot)
    new_history = new_history.index_put((target_rows, target_slots), losses)
    new_counts = torch.minimum(total, torch.full_like(total, k))
    return new_history[:num_timesteps], new_counts[:num_timesteps].to(counts.dtype)
