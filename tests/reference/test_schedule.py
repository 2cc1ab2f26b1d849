"""Schedules and derived tables [S1]–[S4], [S8], checked against the formulas written out independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import (
    betas_for_alpha_bar,
    cosine_alpha_bar,
    diffusion_tables,
    get_named_beta_schedule,
    linear_beta_schedule,
)
from reference.schedule import LINEAR_MIN_T
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance

REASSOCIATED = tolerance(Oracle.REASSOCIATED_FORMULA)  # the same closed form written differently


def test_linear_schedule_endpoints_by_hand() -> None:
    # T = 1000: scale 1, so β runs from 1e-4 to 0.02; T = 4000: scale 1/4.
    betas = linear_beta_schedule(1000)
    assert betas.shape == (1000,)
    assert_close(betas[0], 1e-4, tol=REASSOCIATED)
    assert_close(betas[-1], 0.02, tol=REASSOCIATED)
    betas = linear_beta_schedule(4000)
    assert_close(betas[0], 2.5e-5, tol=REASSOCIATED)
    assert_close(betas[-1], 0.005, tol=REASSOCIATED)
    # equally spaced
    steps = np.diff(linear_beta_schedule(50))
    assert_close(steps, steps[0], tol=REASSOCIATED)


def test_linear_schedule_at_smallest_allowed_T_ends_below_one() -> None:
    assert LINEAR_MIN_T == 21
    betas = linear_beta_schedule(21)
    assert_close(betas[-1], 20.0 / 21.0, tol=REASSOCIATED)
    assert np.all(betas < 1.0)
    assert diffusion_tables(betas).alphas_cumprod[-1] > 0.0


def test_linear_rejects_T_20_where_the_last_beta_is_one() -> None:
    """At T = 20 the last beta is 20/20 = 1, so ᾱ_{T-1} = 0 and L_vb is NaN: rejected, naming T >= 21."""
    with pytest.raises(ValueError, match=r"^T: the linear schedule needs T >= 21"):
        linear_beta_schedule(20)


def test_cosine_alpha_bar_matches_formula_and_vectorises() -> None:
    s = 0.008
    for tau in (0.0, 0.25, 0.5, 0.9, 1.0):
        expected = math.cos((tau + s) / (1 + s) * math.pi / 2) ** 2
        assert_close(cosine_alpha_bar(tau), expected, tol=REASSOCIATED)
    taus = np.array([0.0, 0.5, 1.0])
    assert np.array_equal(cosine_alpha_bar(taus), np.array([cosine_alpha_bar(float(x)) for x in taus]))


def test_cosine_betas_follow_S2_by_hand_for_T4() -> None:
    T = 4
    abar = [math.cos((i / T + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(T + 1)]
    expected = [min(1 - abar[i + 1] / abar[i], 0.999) for i in range(T)]
    assert expected[-1] == 0.999  # ᾱ(1) ≈ 0, so the last beta is clipped
    assert np.array_equal(get_named_beta_schedule("cosine", T), np.array(expected))


def test_betas_for_alpha_bar_with_a_custom_curve_and_max_beta() -> None:
    # ᾱ(τ) = 1 − τ/2: β_i = 1 − (1 − (i+1)/(2T)) / (1 − i/(2T)) = 1 / (2T − i).
    T = 5
    betas = betas_for_alpha_bar(T, lambda tau: 1.0 - tau / 2.0)
    assert_close(betas, [1.0 / (2 * T - i) for i in range(T)], tol=REASSOCIATED)
    clipped = betas_for_alpha_bar(T, lambda tau: 1.0 - tau / 2.0, max_beta=0.12)
    assert np.array_equal(clipped, np.minimum(betas, 0.12))


@given(st.integers(min_value=1, max_value=4000))
def test_cosine_schedule_bounds_and_strictly_decreasing_alpha_bar(T: int) -> None:
    tab = diffusion_tables(get_named_beta_schedule("cosine", T))
    assert np.all(tab.betas > 0.0)
    assert np.all(tab.betas <= 0.999)
    assert np.all(tab.alphas_cumprod > 0.0)
    assert np.all(np.diff(tab.alphas_cumprod) < 0.0)


@given(st.integers(min_value=21, max_value=4000))
def test_linear_schedule_bounds_and_strictly_decreasing_alpha_bar(T: int) -> None:
    tab = diffusion_tables(get_named_beta_schedule("linear", T))
    assert np.all(tab.betas > 0.0)
    assert np.all(tab.betas <= 0.999)
    assert np.all(np.diff(tab.alphas_cumprod) < 0.0)


@given(st.sampled_from(["linear", "cosine"]), st.integers(min_value=21, max_value=2000))
def test_posterior_variance_never_exceeds_beta(name: str, T: int) -> None:
    tab = diffusion_tables(get_named_beta_schedule(name, T))
    tol = tolerance(Oracle.POSTERIOR_VARIANCE_LE_BETA)
    assert tab.posterior_variance[0] == 0.0
    assert np.all(tab.posterior_variance <= tab.betas * (1.0 + tol.rtol))


def test_tables_by_hand_for_T3() -> None:
    betas = np.array([0.1, 0.2, 0.5])
    tab = diffusion_tables(betas)
    assert tab.num_timesteps == 3
    abar = [0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.5]
    assert_close(tab.alphas_cumprod, abar, tol=REASSOCIATED)
    assert_close(tab.alphas_cumprod_prev, [1.0, abar[0], abar[1]], tol=REASSOCIATED)
    assert_close(tab.alphas_cumprod_next, [abar[1], abar[2], 0.0], tol=REASSOCIATED)
    # β̃_1 = 0.2·(1 − 0.9)/(1 − 0.72) = 0.02/0.28; β̃_2 = 0.5·(1 − 0.72)/(1 − 0.36) = 0.14/0.64
    post = [0.0, 0.02 / 0.28, 0.14 / 0.64]
    assert_close(tab.posterior_variance, post, tol=REASSOCIATED)
    assert_close(
        tab.posterior_log_variance_clipped,
        np.log([post[1], post[1], post[2]]),
        tol=REASSOCIATED,
    )
    # c1 = β √ᾱ_prev / (1 − ᾱ), c2 = (1 − ᾱ_prev) √α / (1 − ᾱ); at t = 0: c1 = 1, c2 = 0
    assert_close(tab.posterior_mean_coef1[0], 1.0, tol=REASSOCIATED)
    assert tab.posterior_mean_coef2[0] == 0.0
    assert_close(tab.posterior_mean_coef1[1], 0.2 * math.sqrt(0.9) / 0.28, tol=REASSOCIATED)
    assert_close(tab.posterior_mean_coef2[1], 0.1 * math.sqrt(0.8) / 0.28, tol=REASSOCIATED)
    assert_close(
        tab.sqrt_recipm1_alphas_cumprod[2],
        math.sqrt(1 / 0.36 - 1),
        tol=REASSOCIATED,
    )


def test_tables_are_read_only() -> None:
    tab = diffusion_tables(np.array([0.1, 0.2]))
    with pytest.raises(ValueError):
        tab.betas[0] = 0.5


def test_single_step_uses_beta0_for_the_clipped_log_variance() -> None:
    tab = diffusion_tables(get_named_beta_schedule("cosine", 1))
    assert tab.posterior_variance.tolist() == [0.0]
    assert tab.posterior_log_variance_clipped.tolist() == [math.log(tab.betas[0])]


@pytest.mark.parametrize("name", ["", "Linear", "quadratic", "sigmoid"])
def test_unknown_schedule_name_is_rejected_with_the_allowed_names(name: str) -> None:
    with pytest.raises(ValueError, match=r"name.*linear, cosine"):
        get_named_beta_schedule(name, 100)


@pytest.mark.parametrize("T", [1, 5, 19, 20])
def test_linear_rejects_T_up_to_20(T: int) -> None:
    with pytest.raises(ValueError, match=r"^T: .*T >= 21"):
        get_named_beta_schedule("linear", T)


@pytest.mark.parametrize("T", [0, -3, 2.5, True, "10"])
def test_bad_T_is_rejected(T: object) -> None:
    with pytest.raises(ValueError, match=r"^T: "):
        get_named_beta_schedule("cosine", T)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "betas", [np.array([]), np.array([0.1, 0.0]), np.array([0.1, 1.5]), np.array([[0.1]]), np.array([np.nan])]
)
def test_bad_betas_are_rejected(betas: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"^betas: "):
        diffusion_tables(betas)


def test_bad_max_beta_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^max_beta: "):
        betas_for_alpha_bar(10, cosine_alpha_bar, max_beta=0.0)
