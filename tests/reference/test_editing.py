"""Editing [S53]–[S57]: the start level, the forward process at a level, the replacement, the one-step
forward kernel and RePaint's jump schedule, by hand and against independent constructions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import diffusion_tables, get_named_beta_schedule, respaced_betas, space_timesteps
from reference.editing import forward_step, jump_schedule, noised_to_level, replace_known, start_level
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance

REASSOCIATED = tolerance(Oracle.REASSOCIATED_FORMULA)  # the same closed form written differently
SMALL = diffusion_tables(np.array([0.1, 0.2, 0.3]))  # ᾱ = 0.9, 0.72, 0.504


# ---------------------------------------------------------------- [S53]
@pytest.mark.parametrize(
    ("strength", "steps", "level"),
    [
        (0.0, 10, 0),
        (1.0, 10, 10),
        (1.0, 1, 1),
        (0.5, 5, 3),
        (0.5, 4, 2),
        (0.25, 10, 3),
        (0.3, 10, 3),
        (0.04, 10, 0),
        (0.29, 50, 15),  # 0.29·50 = 14.5 exactly; in binary floating point 14.499999999999998
        (0.57, 50, 29),  # 28.5; in floating point 28.499999999999996
        (0.35, 10, 4),  # 3.5; 0.35 is stored as 0.34999999999999997…
    ],
)
def test_start_level_rounds_half_up(strength: float, steps: int, level: int) -> None:
    """ℓ₀ = ⌊s·T + ½⌋: 2.5 → 3 (not to even), 0.4 → 0; s = 0 → no step, s = 1 → all T."""
    assert start_level(strength, steps) == level


@given(digits=st.integers(1, 4), data=st.data(), steps=st.integers(1, 4000))
def test_start_level_rounds_the_written_decimal_half_up(digits: int, data: st.DataObject, steps: int) -> None:
    """s = k / 10^d typed as a decimal of d digits: ℓ₀ = ⌊(2kT + 10^d) / (2·10^d)⌋ in integers, ties up."""
    k = data.draw(st.integers(0, 10**digits))
    strength = float(f"{k}e-{digits}")
    assert start_level(strength, steps) == (2 * k * steps + 10**digits) // (2 * 10**digits)


@pytest.mark.parametrize("steps", [2, 10, 50, 250, 1000])
def test_start_level_of_every_two_digit_decimal(steps: int) -> None:
    """Every s = k/100: ℓ₀ = ⌊(2kT + 100) / 200⌋ in integers (T = 50: the odd k are ties, all rounded up)."""
    got = [start_level(k / 100, steps) for k in range(101)]
    assert got == [(2 * k * steps + 100) // 200 for k in range(101)]


@pytest.mark.parametrize("strength", [-0.1, 1.0001, math.nan, math.inf])
def test_start_level_rejects_strength_outside_unit_interval(strength: float) -> None:
    with pytest.raises(ValueError, match="strength"):
        start_level(strength, 10)


# ---------------------------------------------------------------- [S54]
def test_noised_to_level_by_hand() -> None:
    """Level 0 is x_0; level ℓ >= 1 uses ᾱ at code index ℓ − 1 (level 3 = T uses ᾱ_2 = 0.504)."""
    x0 = np.array([[0.5], [-0.25], [1.0], [0.75]])
    eps = np.array([[2.0], [1.0], [-1.0], [0.5]])
    got = noised_to_level(SMALL, x0, np.array([0, 1, 2, 3]), eps)
    expected = [
        [0.5],
        [math.sqrt(0.9) * -0.25 + math.sqrt(0.1) * 1.0],
        [math.sqrt(0.72) * 1.0 + math.sqrt(0.28) * -1.0],
        [math.sqrt(0.504) * 0.75 + math.sqrt(0.496) * 0.5],
    ]
    assert_close(got, np.array(expected), tol=REASSOCIATED)
    assert got[0, 0] == 0.5  # exactly x_0, not a q_sample with ᾱ ≈ 1


def test_noised_to_level_rejects_levels_outside_zero_to_t() -> None:
    with pytest.raises(ValueError, match="level"):
        noised_to_level(SMALL, np.zeros((1, 1)), np.array([4]), np.zeros((1, 1)))


# ---------------------------------------------------------------- [S55]
def test_replace_known_keeps_exactly_the_masked_region() -> None:
    x = np.arange(1.0, 9.0).reshape(1, 2, 2, 2)  # (B, C, H, W) = (1, 2, 2, 2)
    known = -x
    mask = np.array([[[[1.0, 0.0], [0.0, 1.0]]]])  # (1, 1, 2, 2): broadcast over both channels
    got = replace_known(x, known, mask)
    expected = np.where(mask.astype(bool), known, x)
    assert np.array_equal(got, expected)


def test_replace_known_rejects_non_binary_or_unbroadcastable_masks() -> None:
    x = np.zeros((1, 1, 2, 2))
    with pytest.raises(ValueError, match="mask"):
        replace_known(x, x, np.full((1, 1, 2, 2), 0.5))
    with pytest.raises(ValueError, match="mask"):
        replace_known(x, x, np.ones((1, 1, 3, 2)))


# ---------------------------------------------------------------- [S56]
def test_forward_step_by_hand() -> None:
    x = np.array([[1.0], [2.0]])
    z = np.array([[0.5], [-1.0]])
    got = forward_step(SMALL, x, np.array([1, 2]), z)
    expected = [[math.sqrt(0.8) * 1.0 + math.sqrt(0.2) * 0.5], [math.sqrt(0.7) * 2.0 - math.sqrt(0.3)]]
    assert_close(got, np.array(expected), tol=REASSOCIATED)


@pytest.mark.parametrize("respaced", [False, True])
def test_forward_step_carries_each_level_marginal_to_the_next(respaced: bool) -> None:
    """[S54] at level ℓ followed by [S56] with β at code index ℓ is [S54] at level ℓ + 1, on the chain's
    own (respaced) β: both are linear in (x_0, ε, z), so compare the x_0 coefficient and the variance."""
    betas = get_named_beta_schedule("cosine", 100)
    if respaced:
        betas, _ = respaced_betas(diffusion_tables(betas).alphas_cumprod, space_timesteps(100, "7"))
    tab = diffusion_tables(betas)
    for level in range(tab.num_timesteps):
        t = np.array([level])
        signal = forward_step(
            tab, noised_to_level(tab, np.ones((1, 1)), t, np.zeros((1, 1))), t, np.zeros((1, 1))
        )
        from_eps = forward_step(
            tab, noised_to_level(tab, np.zeros((1, 1)), t, np.ones((1, 1))), t, np.zeros((1, 1))
        )
        from_z = forward_step(tab, np.zeros((1, 1)), t, np.ones((1, 1)))
        alpha_bar = tab.alphas_cumprod[level]
        assert_close(signal[0], np.array([math.sqrt(alpha_bar)]), tol=REASSOCIATED)
        assert_close(from_eps[0] ** 2 + from_z[0] ** 2, np.array([1.0 - alpha_bar]), tol=REASSOCIATED)


# ---------------------------------------------------------------- [S57]
def test_jump_schedule_by_hand() -> None:
    """T = 5, j = 2, r = 2: jump levels 1 and 3, each walked back up once."""
    assert jump_schedule(5, 2, 2) == [5, 4, 3, 4, 5, 4, 3, 2, 1, 2, 3, 2, 1, 0]
    assert jump_schedule(5, 2, 1) == [5, 4, 3, 2, 1, 0]
    assert jump_schedule(1, 10, 10) == [1, 0]  # no jump level below T − j


def _segments(top: int, length: int, repeats: int) -> list[int]:
    """RePaint's schedule built another way: descend to each jump level p = 1 + a·j (highest first), there
    go up j and back down to p (r − 1) times, then go on down; finally down to 0."""
    points = sorted((1 + a for a in range(0, top - length, length)), reverse=True)
    levels = [top]
    for p in points:
        levels.extend(range(levels[-1] - 1, p - 1, -1))
        for _ in range(repeats - 1):
            levels.extend(range(p + 1, p + length + 1))
            levels.extend(range(p + length - 1, p - 1, -1))
    levels.extend(range(levels[-1] - 1, -1, -1))
    return levels


@pytest.mark.parametrize(
    ("top", "length", "repeats"),
    [(250, 10, 10), (250, 10, 1), (20, 3, 4), (10, 10, 3), (11, 10, 3), (7, 1, 2), (100, 7, 5), (1, 1, 1)],
)
def test_jump_schedule_visits_what_repaints_schedule_visits(top: int, length: int, repeats: int) -> None:
    """Equal to the segment construction; unit moves between T and 0, ending at 0; every jump level is
    reached going down r times; RePaint's `ts` (code indices ℓ − 1) starts at T − 1 and ends at −1."""
    levels = jump_schedule(top, length, repeats)
    assert levels == _segments(top, length, repeats)
    assert levels[0] == top and levels[-1] == 0 and levels[-2] == 1
    assert all(abs(b - a) == 1 for a, b in itertools.pairwise(levels))
    assert min(levels) == 0 and max(levels) == top
    points = range(1, top - length + 1, length)
    arrivals = {p: sum(1 for a, b in itertools.pairwise(levels) if b == p and a == p + 1) for p in points}
    assert all(count == repeats for count in arrivals.values())
    descents = sum(1 for a, b in itertools.pairwise(levels) if b < a)
    assert descents == top + length * (repeats - 1) * len(points)
    ts = [level - 1 for level in levels]
    assert ts[0] == top - 1 and ts[-1] == -1


def test_jump_schedule_of_repaints_paper_setting() -> None:
    """t_T = 250, j = 10, r = 10 (RePaint's get_schedule_jump_paper): 24 jump levels, 4570 transitions."""
    levels = jump_schedule(250, 10, 10)
    assert len(levels) - 1 == 250 + 24 * 9 * 2 * 10


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_jump_schedule_rejects_non_positive_integers(bad: object) -> None:
    for args in ((bad, 10, 1), (10, bad, 1), (10, 10, bad)):
        with pytest.raises(ValueError):
            jump_schedule(*args)  # type: ignore[arg-type]
