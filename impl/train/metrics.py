"""Training metrics accumulated on the device (no host sync per step), reduced across ranks at log time,
then written as JSON lines (and to TensorBoard when it is installed)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from impl.train.distributed import DistContext, all_reduce_sum_

NUM_QUARTILES = 4
# Slots of the accumulator vector.
_LOSS, _MSE, _VB, _COUNT, _MSE_N, _VB_N, _GNORM, _GNORM_N = range(8)
_Q_SUM = 8
_Q_N = _Q_SUM + NUM_QUARTILES
_SIZE = _Q_N + NUM_QUARTILES


class MetricAccumulator:
    """Running sums of per-sample losses (overall and per quartile of t) and of the gradient norm."""

    def __init__(self, num_timesteps: int, device: torch.device) -> None:
        self.num_timesteps = num_timesteps
        self.device = device
        self.sums = torch.zeros(_SIZE, dtype=torch.float64, device=device)

    def add_losses(self, t: torch.Tensor, losses: dict[str, torch.Tensor], weights: torch.Tensor) -> None:
        """Add one microbatch: ``loss`` (weighted as optimised), ``mse``/``vb`` where present, quartiles of
        the raw ``loss`` by ``q = ⌊4t/T⌋``."""
        with torch.no_grad():
            raw = losses["loss"].detach().to(torch.float64)
            n = float(raw.numel())
            self.sums[_LOSS] += (raw * weights.detach().to(torch.float64)).sum()
            self.sums[_COUNT] += n
            if "mse" in losses:
                self.sums[_MSE] += losses["mse"].detach().to(torch.float64).sum()
                self.sums[_MSE_N] += n
            if "vb" in losses:
                self.sums[_VB] += losses["vb"].detach().to(torch.float64).sum()
                self.sums[_VB_N] += n
            quartile = (t.to(torch.int64) * NUM_QUARTILES) // self.num_timesteps
            self.sums[_Q_SUM:_Q_N].index_add_(0, quartile, raw)
            self.sums[_Q_N:_SIZE].index_add_(0, quartile, torch.ones_like(raw))

    def add_grad_norm(self, norm: torch.Tensor) -> None:
        """Add a step's global gradient norm; non-finite norms (fp16 overflow steps) are left out."""
        with torch.no_grad():
            norm64 = norm.detach().to(torch.float64)
            finite = torch.isfinite(norm64)
            self.sums[_GNORM] += torch.where(finite, norm64, torch.zeros_like(norm64))
            self.sums[_GNORM_N] += finite.to(torch.float64)

    def reduce_and_reset(self, ctx: DistContext) -> dict[str, float]:
        """Sum over ranks (one all-reduce), turn sums into means, zero the sums.  This is the host sync."""
        totals = all_reduce_sum_(self.sums.clone(), ctx).cpu().tolist()
        self.sums.zero_()
        out: dict[str, float] = {"loss": _ratio(totals[_LOSS], totals[_COUNT])}
        if totals[_MSE_N] > 0:
            out["mse"] = _ratio(totals[_MSE], totals[_MSE_N])
        if totals[_VB_N] > 0:
            out["vb"] = _ratio(totals[_VB], totals[_VB_N])
        for q in range(NUM_QUARTILES):
            out[f"loss_q{q}"] = _ratio(totals[_Q_SUM + q], totals[_Q_N + q])
        # every rank holds the same (all-reduced) norm, so divide the rank sum back out
        out["grad_norm"] = _ratio(totals[_GNORM], totals[_GNORM_N])
        return out


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


class RunLogger:
    """Appends one JSON object per log interval to ``<run_dir>/log.jsonl``; mirrors to TensorBoard when the
    ``tensorboard`` package is importable."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "log.jsonl"
        self._tb: Any = None
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)
            self._tb = _tensorboard_writer(run_dir / "tensorboard")

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with self.path.open("a") as handle:
            handle.write(json.dumps(clean, sort_keys=True) + "\n")
        if self._tb is not None:
            step = int(record["step"])
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float) and math.isfinite(float(value)):
                    self._tb.add_scalar(f"train/{key}", float(value), step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _tensorboard_writer(log_dir: Path) -> Any:
    try:
        import tensorboard  # type: ignore[import-not-found]  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(log_dir))


def read_log(path: Path) -> list[dict[str, Any]]:
    """Parse a log.jsonl written by :class:`RunLogger`."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
