"""Divergence detection: a run whose loss or gradient stops being finite is stopped, never saved.

Without loss scaling (fp32, bf16) a non-finite gradient norm is a diverged state: AdamW turns it into NaN
weights.  The step of the first such norm is kept on the device (``torch.where``, no host sync per step)
and read at the next log or save, which synchronise anyway.  Because the gradient norm is computed from the
all-reduced gradients, every rank sees the same value and stops at the same point.

With fp16 loss scaling a non-finite gradient is routine: the scaler skips the update and lowers the scale.
Only a streak of more than ``max_nonfinite_steps`` consecutive skipped steps counts as divergence (the
scaler already reads its overflow flag on the host, so the count costs nothing more).
"""

from __future__ import annotations

from pathlib import Path

import torch

from impl.train.errors import TrainError

__all__ = ["DivergenceError", "DivergenceGuard"]


class DivergenceError(TrainError):
    """Training produced a non-finite loss or gradient; nothing was saved for the diverged state."""


class DivergenceGuard:
    """Remembers the first non-finite step; :meth:`check` raises :class:`DivergenceError` after it."""

    def __init__(self, device: torch.device, *, loss_scaling: bool, max_nonfinite_steps: int) -> None:
        self.loss_scaling = loss_scaling
        self.max_nonfinite_steps = max_nonfinite_steps
        self._first_bad = torch.full((), -1, dtype=torch.int64, device=device)
        self._streak = 0
        self._streak_end: int | None = None

    def record_grad_norm(self, norm: torch.Tensor, step: int) -> None:
        """Note ``step`` (the update from step ``step`` to ``step + 1``) if ``norm`` is not finite (no
        loss scaling only; a device op, no host sync)."""
        if self.loss_scaling:
            return
        bad = ~torch.isfinite(norm.detach()) & (self._first_bad < 0)
        self._first_bad = torch.where(bad, torch.full_like(self._first_bad, step), self._first_bad)

    def record_update(self, skipped: bool, step: int) -> None:
        """With loss scaling: count consecutive skipped updates (``skipped`` is already on the host)."""
        if not self.loss_scaling:
            return
        self._streak = self._streak + 1 if skipped else 0
        if self._streak > self.max_nonfinite_steps and self._streak_end is None:
            self._streak_end = step

    def check(self, last_good: Path | None) -> None:
        """Raise :class:`DivergenceError` naming the step and ``last_good`` if the run has diverged."""
        reason = ""
        if self._streak_end is not None:
            reason = (
                f"more than --max_nonfinite_steps {self.max_nonfinite_steps} consecutive fp16 steps "
                f"had a non-finite gradient (up to the update to step {self._streak_end + 1})"
            )
        else:
            first = int(self._first_bad.item())
            if first >= 0:
                reason = f"the loss or gradient is not finite in the update to step {first + 1}"
        if not reason:
            return
        where = (
            f"the last good checkpoint is {str(last_good)!r}"
            if last_good is not None
            else "no checkpoint of this run was saved"
        )
        raise DivergenceError(
            f"training diverged: {reason}; nothing was saved after it and {where} "
            "(train a new run with a lower --lr, or with --grad_clip above 0)"
        )
