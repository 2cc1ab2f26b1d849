"""Label dropout for classifier-free guidance [S51]: the training labels a run with ``class_dropout_prob``
p > 0 feeds the network, each replaced by the null label ``num_classes`` with probability p.

The uniforms are drawn by the trainer from its per-step generator (after the timesteps, the noise and the
flips, so a run with p = 0 draws exactly what it drew before), for the whole global batch: a resumed or a
multi-process run drops the same labels as a straight single-process run.
"""

from __future__ import annotations

import torch

__all__ = ["drop_labels"]


def drop_labels(
    labels: torch.Tensor, uniforms: torch.Tensor, drop_prob: float, null_label: int
) -> torch.Tensor:
    """y′ = ∅ if u < p else y [S51] (u compared with p in float64, as the oracle compares them)."""
    if labels.shape != uniforms.shape:
        raise ValueError(
            f"uniforms must have the shape of labels {tuple(labels.shape)}, got {tuple(uniforms.shape)}"
        )
    dropped = uniforms.to(torch.float64) < drop_prob
    return torch.where(dropped, torch.full_like(labels, null_label), labels)
