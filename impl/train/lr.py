"""Learning-rate schedules: a linear warm-up from 0, then constant, linear or cosine decay to 0.

Every schedule is a pure function of the step, so a resumed run continues it exactly.
"""

from __future__ import annotations

import math

__all__ = ["LR_SCHEDULES", "annealed_lr", "check_lr_schedule", "scheduled_lr"]

LR_SCHEDULES: tuple[str, ...] = ("constant", "linear", "cosine")


def annealed_lr(base_lr: float, step: int, anneal_steps: int) -> float:
    """Linear decay ``lr = base · (1 − step/anneal_steps)``, floored at 0; constant when anneal_steps = 0."""
    if anneal_steps <= 0:
        return base_lr
    return base_lr * max(0.0, 1.0 - step / anneal_steps)


def scheduled_lr(base_lr: float, step: int, *, schedule: str, horizon: int, warmup_steps: int = 0) -> float:
    """The learning rate of optimisation step ``step`` (0-based).

    - warm-up, ``step < warmup_steps``: ``base · step / warmup_steps`` (from 0);
    - then, with progress ``p = (step − warmup_steps) / (horizon − warmup_steps)`` clipped to [0, 1]:
      ``constant``: ``base``; ``linear``: ``base · (1 − p)``; ``cosine``: ``base · ½(1 + cos πp)``.

    ``linear`` without warm-up is :func:`annealed_lr` exactly (``horizon`` 0: constant, as there).
    """
    check_lr_schedule(schedule, horizon, warmup_steps)
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    if schedule == "constant" or (schedule == "linear" and horizon <= 0):
        return base_lr
    if schedule == "linear" and warmup_steps == 0:
        return annealed_lr(base_lr, step, horizon)
    progress = min(1.0, (step - warmup_steps) / (horizon - warmup_steps))
    if schedule == "linear":
        return base_lr * max(0.0, 1.0 - progress)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def check_lr_schedule(schedule: str, horizon: int, warmup_steps: int) -> None:
    """ValueError naming the flag when the schedule, its horizon or its warm-up cannot work together."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"lr_warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    if horizon < 0:
        raise ValueError(f"lr_anneal_steps (the decay horizon) must be >= 0, got {horizon}")
    if schedule == "cosine" and horizon <= 0:
        raise ValueError("lr_schedule cosine needs a decay horizon: lr_anneal_steps > 0 (default: max_steps)")
    decays = schedule == "cosine" or (schedule == "linear" and horizon > 0)
    if decays and warmup_steps >= horizon:
        raise ValueError(
            f"lr_warmup_steps {warmup_steps} must be below the decay horizon lr_anneal_steps {horizon}"
        )
