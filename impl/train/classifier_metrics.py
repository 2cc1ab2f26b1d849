"""The noisy-image classifier's loss and accuracy: cross-entropy [S59] and top-k accuracy per quarter of the
timestep range [S58], and the held-out accumulator that sums them on the device and reduces across ranks.

Top-k ranks the classes by logit, descending, ties by class index (``torch.topk`` breaks ties
arbitrarily; this rule is deterministic and is the oracle's, ``reference.classifier_training.topk_hits``):
all-equal logits (a zero-initialised head) then score the fraction of labels below k, not 1.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as nnf

from impl.train.distributed import DistContext, all_reduce_sum_

__all__ = [
    "NUM_T_BINS",
    "TOPK",
    "HeldOutAccumulator",
    "binned_topk_accuracy",
    "per_sample_cross_entropy",
    "timestep_bins",
    "topk_hits",
]

NUM_T_BINS = 4
"""The timestep range [0, T) is reported in quarters: b(t) = ⌊4t/T⌋."""

TOPK: tuple[int, ...] = (1, 5)
"""The accuracies logged: top-1 and top-5."""


def per_sample_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ℓ_i = log Σ_k exp(z_ik) − z_{i,y_i} per row (B,) [S59]; computed in float32 at least."""
    wide = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    return nnf.cross_entropy(wide, labels, reduction="none")


def topk_hits(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """1[#{j : z_ij > z_{i,y_i}} + #{j < y_i : z_ij = z_{i,y_i}} < k] per row, as the logits' float dtype
    (B,) (part of [S58])."""
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    own = logits.gather(1, labels.view(-1, 1))
    earlier = torch.arange(logits.shape[1], device=logits.device).view(1, -1) < labels.view(-1, 1)
    rank = (logits > own).sum(dim=1) + ((logits == own) & earlier).sum(dim=1)
    return (rank < k).to(logits.dtype if logits.is_floating_point() else torch.float32)


def timestep_bins(t: torch.Tensor, num_timesteps: int, num_bins: int = NUM_T_BINS) -> torch.Tensor:
    """b(t) = ⌊n_b·t / T⌋ (int64) (part of [S58])."""
    return (t.to(torch.int64) * num_bins) // num_timesteps


def binned_topk_accuracy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    t: torch.Tensor,
    num_timesteps: int,
    k: int,
    num_bins: int = NUM_T_BINS,
) -> torch.Tensor:
    """acc_k(b) = mean of the top-k hits of the rows whose timestep lies in bin b; NaN when none does
    (float64, (num_bins,)) [S58]."""
    hits = topk_hits(logits, labels, k).to(torch.float64)
    which = timestep_bins(t, num_timesteps, num_bins)
    sums = torch.zeros(num_bins, dtype=torch.float64, device=logits.device).index_add_(0, which, hits)
    counts = torch.zeros_like(sums).index_add_(0, which, torch.ones_like(hits))
    return torch.where(counts > 0, sums / counts.clamp(min=1.0), torch.full_like(sums, math.nan))


class HeldOutAccumulator:
    """Sums over held-out rows, per bin of t: cross-entropy, top-1 and top-5 hits, and the row count.

    ``add`` does no host sync; ``reduce`` sums over ranks (one all-reduce) and returns the log record:
    ``val_loss``, ``val_acc1``, ``val_acc5`` over all rows and ``val_<name>_q<b>`` per quarter.
    """

    def __init__(self, num_timesteps: int, device: torch.device) -> None:
        self.num_timesteps = num_timesteps
        self.sums = torch.zeros(2 + len(TOPK), NUM_T_BINS, dtype=torch.float64, device=device)

    def add(self, logits: torch.Tensor, labels: torch.Tensor, t: torch.Tensor) -> None:
        which = timestep_bins(t, self.num_timesteps)
        rows = [per_sample_cross_entropy(logits, labels).to(torch.float64)]
        rows += [topk_hits(logits, labels, k).to(torch.float64) for k in TOPK]
        rows.append(torch.ones(logits.shape[0], dtype=torch.float64, device=logits.device))
        for slot, values in enumerate(rows):
            self.sums[slot].index_add_(0, which, values)

    def reduce(self, ctx: DistContext) -> dict[str, float]:
        totals = all_reduce_sum_(self.sums.clone(), ctx).cpu()
        names = ["loss", *(f"acc{k}" for k in TOPK)]
        counts = totals[-1]
        record: dict[str, float] = {"val_num_samples": float(counts.sum())}
        for slot, name in enumerate(names):
            record[f"val_{name}"] = _ratio(float(totals[slot].sum()), float(counts.sum()))
            for b in range(NUM_T_BINS):
                record[f"val_{name}_q{b}"] = _ratio(float(totals[slot, b]), float(counts[b]))
        return record


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan
