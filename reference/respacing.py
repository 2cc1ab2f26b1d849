"""Timestep respacing: which steps to keep and the process over them ([S27]–[S28])."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import FloatArray, IntArray, as_float64, check_positive_int, check_timesteps

DDIM_PREFIX = "ddim"
MODEL_TIME_SCALE = 1000.0


def ddim_stride_steps(T: int, count: int) -> set[int]:
    """range(0, T, i) for the smallest integer stride i >= 1 with len(range(0, T, i)) == count [S27]."""
    for stride in range(1, T + 1):  # beyond i = T every range has length 1, so i <= T suffices
        if len(range(0, T, stride)) == count:
            return set(range(0, T, stride))
    raise ValueError(
        f"spec: no integer stride gives exactly {count} steps out of T={T} for '{DDIM_PREFIX}{count}'"
    )


def section_steps(start: int, size: int, count: int) -> list[int]:
    """start + round(cur), cur = 0, s, 2s, … (count values, summed in float64), s = (n−1)/(c−1) [S27]."""
    if count > size:
        raise ValueError(f"spec: cannot take {count} steps from a section of {size} steps")
    stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
    cur = 0.0
    taken = []
    for _ in range(count):
        taken.append(start + round(cur))
        cur += stride
    return taken


def _parse_counts(spec: str | Sequence[int]) -> list[int]:
    if isinstance(spec, str):
        parts = [part.strip() for part in spec.split(",")]
        if not spec.strip() or any(not part for part in parts):
            raise ValueError(
                f"spec: expected 'ddimN' or comma-separated integer counts like '10,15,20', got {spec!r}"
            )
        try:
            counts = [int(part) for part in parts]
        except ValueError:
            raise ValueError(f"spec: counts must be integers, got {spec!r}") from None
    else:
        counts = list(spec)
        if not counts or any(isinstance(c, bool) or not isinstance(c, int | np.integer) for c in counts):
            raise ValueError(f"spec: expected a non-empty sequence of integer counts, got {spec!r}")
        counts = [int(c) for c in counts]
    if any(c < 0 for c in counts):
        raise ValueError(f"spec: counts must be non-negative, got {counts}")
    return counts


def space_timesteps(T: int, spec: str | Sequence[int]) -> set[int]:
    """The kept steps: "ddimN" → range(0, T, i) for the smallest stride i giving N steps; otherwise counts
    per equal section (the first T mod k one longer), evenly spaced with Python rounding [S27].
    """
    T = check_positive_int(T, "T")
    if isinstance(spec, str) and spec.startswith(DDIM_PREFIX):
        count_text = spec[len(DDIM_PREFIX) :]
        if not count_text.isdigit() or int(count_text) < 1:
            raise ValueError(f"spec: expected 'ddimN' with an integer N >= 1, got {spec!r}")
        return ddim_stride_steps(T, int(count_text))
    counts = _parse_counts(spec)
    size_per, extra = divmod(T, len(counts))
    kept: set[int] = set()
    start = 0
    for index, count in enumerate(counts):
        size = size_per + (1 if index < extra else 0)
        kept.update(section_steps(start, size, count))
        start += size
    if not kept:
        raise ValueError(f"spec: keeps no timesteps at all, got {spec!r}")
    return kept


def respaced_betas(alphas_cumprod: ArrayLike, use_timesteps: Iterable[int]) -> tuple[FloatArray, IntArray]:
    """β'_i = 1 − ᾱ_{S_i}/ᾱ_{S_{i−1}}, ᾱ_{S_{−1}} = 1, over the sorted kept steps S [S28].

    Returns ``(betas, timestep_map)`` with ``timestep_map`` the sorted kept original steps.
    """
    abar = as_float64(alphas_cumprod, "alphas_cumprod")
    if abar.ndim != 1 or abar.shape[0] < 1:
        raise ValueError(f"alphas_cumprod: expected a non-empty 1-D array, got shape {abar.shape}")
    steps = sorted({int(s) for s in use_timesteps})
    if not steps:
        raise ValueError("use_timesteps: must keep at least one timestep")
    if steps[0] < 0 or steps[-1] >= abar.shape[0]:
        raise ValueError(
            f"use_timesteps: every step must lie in [0, {abar.shape[0] - 1}], got {steps[0]}..{steps[-1]}"
        )
    kept = abar[steps]
    previous = np.append(1.0, kept[:-1])
    return 1.0 - kept / previous, np.asarray(steps, dtype=np.int64)


def model_timesteps(
    t: ArrayLike, timestep_map: ArrayLike, original_num_timesteps: int, rescale_timesteps: bool
) -> FloatArray:
    """The net's time input: S_t (the original step), times 1000/T_original when rescaling [S28], §5."""
    steps = np.asarray(timestep_map)
    if steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer):
        raise ValueError(f"timestep_map: expected a 1-D integer array, got {steps.dtype} {steps.shape}")
    original = check_positive_int(original_num_timesteps, "original_num_timesteps")
    t_arr = check_timesteps(t, steps.shape[0])
    mapped = steps[t_arr].astype(np.float64)
    if rescale_timesteps:
        return mapped * (MODEL_TIME_SCALE / original)
    return mapped
