"""Editing with the reverse chain on tensors: img2img (SDEdit) and inpainting (RePaint) ([S53]–[S57]).

Levels ℓ = 0 … T name the chain's states (x_0 the data, x_T the start of sampling); the reverse step with
code index t maps level t + 1 to level t, and q_sample at code index t samples level t + 1 (docs/spec.md,
[S53]–[S57]).  Pure functions of a `TorchTables` and tensors; the loops are `impl.sampling.editing`.
"""

from __future__ import annotations

import math
from decimal import Decimal

import torch

from impl.diffusion.process import gather, q_sample
from impl.diffusion.schedule import TorchTables

__all__ = [
    "check_jump_length",
    "check_mask",
    "check_strength",
    "forward_step",
    "jump_schedule",
    "largest_jump_length",
    "noised_to_level",
    "replace_known",
    "start_level",
]


def check_strength(strength: float, name: str = "strength") -> float:
    """``strength`` as a float in [0, 1], else a ValueError naming ``name``."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise ValueError(f"{name} must be a number in [0, 1], got {strength!r}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (0: the input unchanged, 1: all steps), got {strength}")
    return float(strength)


def start_level(strength: float, num_timesteps: int) -> int:
    """ℓ₀ = ⌊s·T + ½⌋ [S53]: img2img runs the reverse steps ℓ₀ − 1, …, 0 (none at s = 0, all T at s = 1).

    Rounded in integers on the decimal s was written as (``repr``): n/d = s exactly, ℓ₀ = ⌊(2nT + d) / 2d⌋,
    so decimal ties round up (0.29 of 50 steps is 14.5 → 15, where floating point gives 14).
    """
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    numerator, denominator = Decimal(repr(check_strength(strength))).as_integer_ratio()
    return (2 * numerator * num_timesteps + denominator) // (2 * denominator)


def noised_to_level(
    tab: TorchTables, x_start: torch.Tensor, level: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """x_ℓ = q_sample(x_0, ℓ − 1, ε) for ℓ >= 1 and x_0 itself at ℓ = 0 [S54]; ``level`` (B,) in [0, T]."""
    if level.device.type == "cpu" and level.numel() and not torch.compiler.is_compiling():
        low, high = int(level.min()), int(level.max())
        if low < 0 or high > tab.betas.shape[0]:
            raise ValueError(f"level must lie in [0, {tab.betas.shape[0]}], got values from {low} to {high}")
    noised = q_sample(tab, x_start, (level - 1).clamp(min=0), noise)
    at_data = (level == 0).to(x_start.device).reshape(-1, *([1] * (x_start.ndim - 1)))
    return torch.where(at_data, x_start, noised)


def check_mask(mask: torch.Tensor, shape: torch.Size | tuple[int, ...], name: str = "mask") -> torch.Tensor:
    """``mask`` as a bool tensor (True = keep): it must hold only 0 and 1 and broadcast against ``shape``."""
    if mask.dtype != torch.bool:
        if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"{name} must hold only 0 (generate) and 1 (keep)")
        mask = mask != 0
    target = tuple(shape)
    pairs = zip(reversed(mask.shape), reversed(target), strict=False)
    if mask.ndim > len(target) or any(m not in (1, s) for m, s in pairs):
        raise ValueError(f"{name} has shape {tuple(mask.shape)}, which does not broadcast to {target}")
    return mask


def replace_known(x: torch.Tensor, known: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x ← m ⊙ k + (1 − m) ⊙ x [S55], as a select: the kept region is ``known`` bit for bit.

    ``keep`` is the bool mask of `check_mask` (True where the known image is kept).
    """
    return torch.where(keep.to(x.device), known.to(x.dtype), x)


def forward_step(tab: TorchTables, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_{t+1} = √(1 − β_t) x_t + √β_t z [S56]: q(x_{t+1} | x_t), β the chain's own (respaced) β."""
    beta = gather(tab.betas, t, x.ndim)
    return torch.sqrt(1.0 - beta) * x + torch.sqrt(beta) * noise


def jump_schedule(num_levels: int, jump_length: int, resample_jumps: int) -> tuple[int, ...]:
    """RePaint's visited levels T, …, 0 [S57]: after arriving at a jump level 1 + a·j (a·j < T − j) for one
    of its first r − 1 times, go back up j levels; r = 1 is the plain chain T, T − 1, …, 0."""
    for name, value in (
        ("num_levels", num_levels),
        ("jump_length", jump_length),
        ("resample_jumps", resample_jumps),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    jumps_left = dict.fromkeys(range(1, num_levels - jump_length + 1, jump_length), resample_jumps - 1)
    visited = [num_levels]
    level = num_levels
    while level > 0:
        level -= 1
        visited.append(level)
        if jumps_left.get(level, 0) > 0:
            jumps_left[level] -= 1
            visited.extend(range(level + 1, level + jump_length + 1))
            level += jump_length
    return tuple(visited)


def largest_jump_length(num_levels: int) -> int:
    """The largest j that leaves a jump level on a chain of L = ``num_levels`` levels [S57]: the lowest jump
    level 1 (a = 0) needs 0 < L − j, so L − 1; 0 when L <= 1 (no jump length works)."""
    return max(num_levels - 1, 0)


def check_jump_length(
    num_levels: int, jump_length: int, resample_jumps: int, name: str = "jump_length"
) -> None:
    """Refuse r = ``resample_jumps`` > 1 where the jump schedule over ``num_levels`` levels has no jump level
    (j >= L): resampling would be switched off without a word.  The ValueError names ``name``."""
    if resample_jumps <= 1 or jump_length <= largest_jump_length(num_levels):
        return
    largest = largest_jump_length(num_levels)
    fix = (
        f"the largest that works is {largest}"
        if largest >= 1
        else "no jump length works (resampling needs at least 2 levels)"
    )
    raise ValueError(
        f"{name} {jump_length} leaves no jump level on a chain of {num_levels} levels, so resample_jumps "
        f"{resample_jumps} would resample nothing (a jump level 1 + a·j needs a·j < {num_levels} − j): {fix}"
    )
