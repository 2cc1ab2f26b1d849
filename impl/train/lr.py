"""Learning-rate schedule."""

from __future__ import annotations


def annealed_lr(base_lr: float, step: int, anneal_steps: int) -> float:
    """Linear decay ``lr = base · (1 − step/anneal_steps)``, floored at 0; constant when anneal_steps = 0."""
    if anneal_steps <= 0:
        return base_lr
    return base_lr * max(0.0, 1.0 - step / anneal_steps)
