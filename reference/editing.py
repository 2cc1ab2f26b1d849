"""Editing with the reverse chain: img2img (SDEdit) and inpainting (RePaint) ([S53]–[S57]), float64.

Levels.  The chain's states are x_ℓ for the levels ℓ = 0 … T (T = the number of steps of the chain, after
respacing): x_0 is the data and x_T the start of sampling.  The reverse step with code index t (the ``t``
of every other function, 0 <= t < T) maps level t + 1 to level t, and ``q_sample(tab, x_0, t, ε)``
samples level t + 1, q(x_{t+1} | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) with ᾱ the table at code index t.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import (
    FloatArray,
    as_float64,
    check_batch,
    check_positive_int,
    check_same_shape,
    check_timesteps,
    gather,
)
from reference.process import q_sample
from reference.schedule import DiffusionTables


def start_level(strength: float, num_timesteps: int) -> int:
    """ℓ₀ = ⌊s·T + ½⌋, the level img2img with strength s ∈ [0, 1] starts at on a T-step chain [S53].

    s is taken as the decimal it was written as (``repr(s)``, the shortest decimal that reads back as the
    float s) and s·T + ½ is rounded down in exact rational arithmetic, so a decimal tie rounds up:
    s = 0.29, T = 50 gives 14.5 → 15 (binary floating point gives 14.499999999999998 → 14).
    The chain then runs the ℓ₀ reverse steps with code indices ℓ₀ − 1, …, 0: s = 0 runs none, s = 1 all T.
    """
    steps = check_positive_int(num_timesteps, "num_timesteps")
    if not (isinstance(strength, (int, float)) and math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength: expected a number in [0, 1], got {strength!r}")
    exact = Fraction(repr(float(strength)))
    return math.floor(exact * steps + Fraction(1, 2))


def noised_to_level(
    tab: DiffusionTables, x_start: ArrayLike, level: ArrayLike, noise: ArrayLike
) -> FloatArray:
    """x_ℓ = q_sample(x_0, ℓ − 1, ε) = √ᾱ_{ℓ−1} x_0 + √(1 − ᾱ_{ℓ−1}) ε for ℓ >= 1, and x_0 at ℓ = 0 [S54].

    ``level`` holds one level ℓ in [0, T] per batch row.  It is the img2img start x_{ℓ₀} (ℓ₀ of [S53]) and
    the known image of inpainting at level ℓ ([S55]).
    """
    x0 = as_float64(x_start, "x_start")
    levels = check_timesteps(level, tab.num_timesteps + 1, "level")
    check_batch(x0, "x_start", levels)
    eps = as_float64(noise, "noise")
    check_same_shape(eps, "noise", x0, "x_start")
    noised = q_sample(tab, x0, np.maximum(levels - 1, 0), eps)
    at_data = (levels == 0).reshape((-1,) + (1,) * (x0.ndim - 1))
    result: FloatArray = np.where(at_data, x0, noised)
    return result


def replace_known(x: ArrayLike, known: ArrayLike, mask: ArrayLike) -> FloatArray:
    """x ← m ⊙ k + (1 − m) ⊙ x, m = 1 where the known image k is kept, 0 where it is generated [S55].

    ``mask`` holds only 0 and 1 and broadcasts against ``x`` (e.g. shape (B, 1, H, W)); ``known`` is the
    known image at x's level, ``noised_to_level`` [S54], so that at level 0 the kept region is x_0 itself.
    """
    x_arr = as_float64(x, "x")
    k = as_float64(known, "known")
    check_same_shape(k, "known", x_arr, "x")
    m = as_float64(mask, "mask")
    if not np.all((m == 0.0) | (m == 1.0)):
        raise ValueError("mask: expected only 0 (generate) and 1 (keep)")
    try:
        np.broadcast_shapes(m.shape, x_arr.shape)
    except ValueError:
        raise ValueError(
            f"mask: shape {m.shape} does not broadcast against x's shape {x_arr.shape}"
        ) from None
    replaced: FloatArray = m * k + (1.0 - m) * x_arr
    return replaced


def forward_step(tab: DiffusionTables, x: ArrayLike, t: ArrayLike, noise: ArrayLike) -> FloatArray:
    """x_{t+1} = √(1 − β_t) x_t + √β_t z, the one-step forward kernel q(x_{t+1} | x_t) from level t to t + 1,
    β_t the chain's own β at code index t (on a respaced chain its respaced β) [S56]."""
    x_arr = as_float64(x, "x")
    t_arr = check_timesteps(t, tab.num_timesteps)
    check_batch(x_arr, "x", t_arr)
    z = as_float64(noise, "noise")
    check_same_shape(z, "noise", x_arr, "x")
    beta = gather(tab.betas, t_arr, x_arr.ndim)
    stepped: FloatArray = np.sqrt(1.0 - beta) * x_arr + np.sqrt(beta) * z
    return stepped


def jump_schedule(num_levels: int, jump_length: int, resample_jumps: int) -> list[int]:
    """RePaint's visited levels L = (ℓ_0 = T, ℓ_1, …, ℓ_n = 0), |ℓ_{k+1} − ℓ_k| = 1 [S57].

    Walk down one level at a time from T; each time the walk arrives at a jump level 1 + a·j (a >= 0 an
    integer, a·j < T − j, j = ``jump_length``) for one of its first r − 1 times (r = ``resample_jumps``),
    it walks back up j levels before going on down.  A descent ℓ → ℓ − 1 is the reverse step with code
    index ℓ − 1; an ascent ℓ → ℓ + 1 is the forward kernel [S56] with β at code index ℓ.  r = 1 is the plain
    chain T, T − 1, …, 0.  (RePaint's ``ts`` list holds the code indices ℓ − 1, ending at −1.)
    """
    top = check_positive_int(num_levels, "num_levels")
    length = check_positive_int(jump_length, "jump_length")
    repeats = check_positive_int(resample_jumps, "resample_jumps")
    remaining = {1 + a: repeats - 1 for a in range(0, top - length, length)}
    levels = [top]
    level = top
    while level > 0:
        level -= 1
        levels.append(level)
        if remaining.get(level, 0) > 0:
            remaining[level] -= 1
            for _ in range(length):
                level += 1
                levels.append(level)
    return levels
