"""Respacing [S27]–[S28]: expected step sets worked out by hand from the SPEC algorithm."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import (
    diffusion_tables,
    get_named_beta_schedule,
    model_timesteps,
    respaced_betas,
    space_timesteps,
)
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance


def test_ddim50_of_1000_is_stride_20() -> None:
    # stride 19 gives ceil(1000/19) = 53 steps, stride 20 gives exactly 50
    assert space_timesteps(1000, "ddim50") == set(range(0, 1000, 20))


def test_ddim_small_cases() -> None:
    # T = 10: strides 1..10 give 10, 5, 4, 3, 2, 2, 2, 2, 2, 1 steps
    assert space_timesteps(10, "ddim3") == {0, 4, 8}
    assert space_timesteps(10, "ddim4") == {0, 3, 6, 9}
    assert space_timesteps(10, "ddim1") == {0}
    assert space_timesteps(10, "ddim10") == set(range(10))
    with pytest.raises(ValueError, match=r"^spec: no integer stride gives exactly 7 steps"):
        space_timesteps(10, "ddim7")
    with pytest.raises(ValueError, match=r"^spec: no integer stride gives exactly 11 steps"):
        space_timesteps(10, "ddim11")


def test_sections_10_15_20_of_100() -> None:
    # sizes 34, 33, 33.  Section 0: stride 33/9 = 3.667 → 0, 4, 7, 11, 15, 18, 22, 26, 29, 33.
    # Section 1 (start 34): stride 32/14 = 2.2857 → 0, 2, 5, 7, 9, 11, 14, 16, 18, 21, 23, 25, 27, 30, 32.
    # Section 2 (start 67): stride 32/19 = 1.6842 → 0, 2, 3, 5, 7, 8, 10, 12, 13, 15, 17, 19, 20, 22, 24, 25,
    # 27, 29, 30, 32.  (No value lands near a .5 tie: the denominators are 9, 7 and 19.)
    first = {0, 4, 7, 11, 15, 18, 22, 26, 29, 33}
    second = {34 + k for k in (0, 2, 5, 7, 9, 11, 14, 16, 18, 21, 23, 25, 27, 30, 32)}
    third = {67 + k for k in (0, 2, 3, 5, 7, 8, 10, 12, 13, 15, 17, 19, 20, 22, 24, 25, 27, 29, 30, 32)}
    expected = first | second | third
    assert len(expected) == 45
    assert space_timesteps(100, "10,15,20") == expected
    assert space_timesteps(100, [10, 15, 20]) == expected
    assert space_timesteps(100, " 10, 15 ,20") == expected


def test_sections_use_python_half_to_even_rounding() -> None:
    # T = 6, one section of 6 with 3 counts: stride 2.5 → round(0) = 0, round(2.5) = 2, round(5.0) = 5
    assert space_timesteps(6, "3") == {0, 2, 5}
    # T = 10, "3,3,3": sizes 4, 3, 3; stride 1.5 → 0, round(1.5) = 2, 3; then 4, 5, 6 and 7, 8, 9
    assert space_timesteps(10, "3,3,3") == {0, 2, 3, 4, 5, 6, 7, 8, 9}


def test_sections_with_count_one_or_zero() -> None:
    assert space_timesteps(10, [2, 3]) == {0, 4, 5, 7, 9}
    assert space_timesteps(10, "1,1") == {0, 5}
    assert space_timesteps(10, "0,2") == {5, 9}
    assert space_timesteps(1000, "1000") == set(range(1000))


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("", r"^spec: expected 'ddimN' or comma-separated"),
        ("10,,5", r"^spec: expected 'ddimN' or comma-separated"),
        ("10,abc", r"^spec: counts must be integers"),
        ("2.5", r"^spec: counts must be integers"),
        ("6,1", r"^spec: cannot take 6 steps from a section of 5 steps"),
        ("-1,3", r"^spec: counts must be non-negative"),
        ("0,0", r"^spec: keeps no timesteps"),
        ("ddim", r"^spec: expected 'ddimN' with an integer N >= 1"),
        ("ddim0", r"^spec: expected 'ddimN' with an integer N >= 1"),
        ("ddimx", r"^spec: expected 'ddimN' with an integer N >= 1"),
        ([], r"^spec: expected a non-empty sequence"),
        ([1.5], r"^spec: expected a non-empty sequence of integer counts"),
    ],
)
def test_impossible_specs_are_rejected(spec: object, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        space_timesteps(10, spec)  # type: ignore[arg-type]


def test_bad_T_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^T: "):
        space_timesteps(0, "ddim1")


@given(
    st.sampled_from(["linear", "cosine"]),
    st.integers(min_value=21, max_value=600),
    st.data(),
)
def test_respaced_process_keeps_alpha_bar_at_the_kept_steps(name: str, T: int, data: st.DataObject) -> None:
    abar = diffusion_tables(get_named_beta_schedule(name, T)).alphas_cumprod
    kept = data.draw(st.sets(st.integers(min_value=0, max_value=T - 1), min_size=1, max_size=T))
    betas, timestep_map = respaced_betas(abar, kept)
    assert timestep_map.tolist() == sorted(kept)
    new_abar = diffusion_tables(betas).alphas_cumprod
    expected = abar[timestep_map]
    # A schedule whose ᾱ reaches 0 exactly (β = 1; no named schedule since linear needs T >= 21) must keep
    # the zero exactly (β' = 1), and the relative bound below only applies to the positive entries.
    zero = expected == 0.0
    assert np.all(new_abar[zero] == 0.0)
    positive = expected[~zero]
    ratios = positive / np.append(1.0, positive[:-1])
    per_step = tolerance(Oracle.RESPACED_ALPHA_BAR_PER_STEP).rtol
    bound = per_step * np.cumsum(2.0 + 1.0 / ratios)
    assert np.all(np.abs(new_abar[~zero] - positive) <= bound * positive)


def test_respaced_betas_by_hand() -> None:
    abar = np.array([0.9, 0.72, 0.36])
    betas, timestep_map = respaced_betas(abar, {2, 0})
    assert timestep_map.tolist() == [0, 2]
    assert_close(betas, [0.1, 0.6], tol=tolerance(Oracle.REASSOCIATED_FORMULA))


def test_respaced_betas_rejects_bad_steps() -> None:
    with pytest.raises(ValueError, match=r"^use_timesteps: every step must lie in \[0, 2\]"):
        respaced_betas(np.array([0.9, 0.8, 0.7]), [0, 3])
    with pytest.raises(ValueError, match=r"^use_timesteps: must keep at least one"):
        respaced_betas(np.array([0.9, 0.8, 0.7]), [])


def test_model_timesteps_maps_then_rescales() -> None:
    timestep_map = np.array([0, 250, 500, 750], dtype=np.int64)
    t = np.array([3, 0, 1])
    assert model_timesteps(t, timestep_map, 1000, False).tolist() == [750.0, 0.0, 250.0]
    assert model_timesteps(t, timestep_map, 4000, True).tolist() == [187.5, 0.0, 62.5]
    with pytest.raises(ValueError, match=r"^t: timesteps must lie in \[0, 3\]"):
        model_timesteps(np.array([4]), timestep_map, 1000, True)
