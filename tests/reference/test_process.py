"""Forward process, posterior and reverse mean/variance [S5]–[S14] against independent mathematics."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from reference import (
    diffusion_tables,
    get_named_beta_schedule,
    model_variance,
    p_mean_variance,
    predict_eps_from_xstart,
    predict_xstart_from_eps,
    predict_xstart_from_xprev,
    q_mean_variance,
    q_posterior_mean_variance,
    q_sample,
)
from reference.schedule import DiffusionTables
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance

REASSOCIATED = tolerance(Oracle.REASSOCIATED_FORMULA)  # the same closed form written differently

SCHEDULES = [("cosine", 50), ("linear", 1000), ("cosine", 1000)]


def _tables(name: str, T: int) -> DiffusionTables:
    return diffusion_tables(get_named_beta_schedule(name, T))


def _alpha_bars_by_loop(betas: np.ndarray) -> list[float]:
    """ᾱ_t as a plain running product in Python floats (independent of the tables' cumprod)."""
    out, running = [], 1.0
    for beta in betas.tolist():
        running *= 1.0 - beta
        out.append(running)
    return out


def _z(estimate: float, exact: float, standard_error: float) -> float:
    return abs(estimate - exact) / standard_error


@pytest.mark.parametrize(("name", "T"), SCHEDULES)
def test_posterior_matches_the_gaussian_product_formula(name: str, T: int) -> None:
    tab = _tables(name, T)
    abar = _alpha_bars_by_loop(tab.betas)
    rng = np.random.default_rng(0)
    t = np.arange(1, T)
    x0 = rng.uniform(-1, 1, size=(T - 1, 2))
    xt = rng.standard_normal((T - 1, 2))
    mean, variance, log_variance = q_posterior_mean_variance(tab, x0, xt, t)
    # q(x_{t−1}|x_0) = N(√ᾱ_{t−1} x_0, 1 − ᾱ_{t−1}) times q(x_t|x_{t−1}) = N(√α_t x_{t−1}, β_t) as a density
    # of x_{t−1}: precisions add, precision-weighted means add.
    exp_mean = np.empty_like(x0)
    exp_var = np.empty(T - 1)
    for row, step in enumerate(t.tolist()):
        beta = float(tab.betas[step])
        prior_var = 1.0 - abar[step - 1]
        precision = 1.0 / prior_var + (1.0 - beta) / beta
        exp_var[row] = 1.0 / precision
        exp_mean[row] = (
            math.sqrt(abar[step - 1]) * x0[row] / prior_var + math.sqrt(1.0 - beta) * xt[row] / beta
        ) / (precision)
    assert_close(mean, exp_mean, tol=tolerance(Oracle.POSTERIOR_PRODUCT_FORMULA))
    assert_close(
        variance, np.repeat(exp_var[:, None], 2, axis=1), tol=tolerance(Oracle.POSTERIOR_PRODUCT_FORMULA)
    )
    assert_close(
        np.exp(log_variance[1:]),
        np.repeat(exp_var[1:, None], 2, axis=1),
        tol=tolerance(Oracle.POSTERIOR_PRODUCT_FORMULA),
    )


def test_posterior_at_t0_is_the_data_itself() -> None:
    tab = _tables("cosine", 50)
    x0 = np.array([[0.25, -0.5]])
    mean, variance, log_variance = q_posterior_mean_variance(tab, x0, np.array([[3.0, 4.0]]), np.array([0]))
    assert_close(mean, x0, tol=REASSOCIATED)
    assert np.array_equal(variance, np.zeros((1, 2)))
    assert np.all(log_variance == tab.posterior_log_variance_clipped[1])


@pytest.mark.parametrize("step", [1, 10, 40])
def test_posterior_matches_monte_carlo_regression(step: int) -> None:
    tab = _tables("cosine", 50)
    z_max = tolerance(Oracle.MONTE_CARLO_SIGMAS).atol
    rng = np.random.default_rng(1234 + step)
    n, x0 = 200_000, 0.3
    abar_prev = float(tab.alphas_cumprod[step - 1])
    beta = float(tab.betas[step])
    x_prev = math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * rng.standard_normal(n)
    x_t = math.sqrt(1 - beta) * x_prev + math.sqrt(beta) * rng.standard_normal(n)
    # E[x_{t−1}|x_t, x_0] is linear in x_t: least squares gives slope c2, intercept c1·x_0, residual var β̃.
    xt_mean, xt_var = x_t.mean(), x_t.var()
    slope = np.mean((x_t - xt_mean) * (x_prev - x_prev.mean())) / xt_var
    intercept = x_prev.mean() - slope * xt_mean
    resid_var = np.sum((x_prev - intercept - slope * x_t) ** 2) / (n - 2)
    se_slope = math.sqrt(resid_var / (n * xt_var))
    se_intercept = math.sqrt(resid_var * (1 / n + xt_mean**2 / (n * xt_var)))
    probe = np.array([[0.0], [1.0]])  # mean at x_t = 0 is c1·x_0; the difference to x_t = 1 is c2
    mean, variance, _ = q_posterior_mean_variance(tab, np.full((2, 1), x0), probe, np.array([step, step]))
    assert _z(intercept, float(mean[0, 0]), se_intercept) < z_max
    assert _z(slope, float(mean[1, 0] - mean[0, 0]), se_slope) < z_max
    assert _z(resid_var, float(variance[0, 0]), float(variance[0, 0]) * math.sqrt(2 / (n - 2))) < z_max


@pytest.mark.parametrize(("name", "T"), SCHEDULES)
def test_one_jump_equals_composed_single_steps(name: str, T: int) -> None:
    tab = _tables(name, T)
    x0 = 0.7
    means, variances = [], []
    m, v = x0, 0.0
    for beta in tab.betas.tolist():  # x_t = √α_t x_{t−1} + √β_t z: mean ← √α mean, var ← α var + β
        m, v = math.sqrt(1 - beta) * m, (1 - beta) * v + beta
        means.append(m)
        variances.append(v)
    mean, variance, log_variance = q_mean_variance(tab, np.full((T, 1), x0), np.arange(T))
    assert_close(mean[:, 0], np.array(means), tol=tolerance(Oracle.ONE_JUMP_COMPOSITION))
    assert_close(variance[:, 0], np.array(variances), tol=tolerance(Oracle.ONE_JUMP_COMPOSITION))
    assert_close(np.exp(log_variance[:, 0]), np.array(variances), tol=tolerance(Oracle.ONE_JUMP_COMPOSITION))


@pytest.mark.parametrize("step", [3, 19])
def test_one_jump_sample_equals_chained_steps_in_distribution(step: int) -> None:
    tab = _tables("cosine", 20)
    z_max = tolerance(Oracle.MONTE_CARLO_SIGMAS).atol
    rng = np.random.default_rng(99 + step)
    n, x0 = 100_000, 0.5
    chained = np.full(n, x0)
    for s in range(step + 1):
        beta = float(tab.betas[s])
        chained = math.sqrt(1 - beta) * chained + math.sqrt(beta) * rng.standard_normal(n)
    jumped = q_sample(tab, np.full((n, 1), x0), np.full(n, step), rng.standard_normal((n, 1)))[:, 0]
    mean, variance, _ = q_mean_variance(tab, np.array([[x0]]), np.array([step]))
    exact_mean, exact_var = float(mean[0, 0]), float(variance[0, 0])
    for samples in (chained, jumped):
        assert _z(samples.mean(), exact_mean, math.sqrt(exact_var / n)) < z_max
        assert _z(samples.var(ddof=1), exact_var, exact_var * math.sqrt(2 / (n - 1))) < z_max


def test_q_sample_is_mean_plus_std_times_noise() -> None:
    tab = _tables("linear", 100)
    x0 = np.array([[0.2, -0.4], [1.0, 0.0]])
    t = np.array([5, 77])
    mean, variance, _ = q_mean_variance(tab, x0, t)
    assert np.array_equal(q_sample(tab, x0, t, np.zeros_like(x0)), mean)
    assert_close(
        q_sample(tab, x0, t, np.ones_like(x0)),
        mean + np.sqrt(variance),
        tol=REASSOCIATED,
    )


@pytest.mark.parametrize(("name", "T"), SCHEDULES)
def test_xstart_from_eps_inverts_q_sample(name: str, T: int) -> None:
    tab = _tables(name, T)
    per_unit = tolerance(Oracle.INVERSE_PAIR_PER_UNIT).atol
    rng = np.random.default_rng(3)
    t = np.arange(T)
    x0 = rng.uniform(-1, 1, (T, 3))
    eps = rng.standard_normal((T, 3))
    x_t = q_sample(tab, x0, t, eps)
    size = np.maximum(np.abs(x_t), np.abs(eps)).max()
    kappa = 1 / (1 - tab.alphas_cumprod)
    bound = per_unit * size * (1 + 1 / tab.sqrt_alphas_cumprod + kappa)[:, None]
    assert np.all(np.abs(predict_xstart_from_eps(tab, x_t, t, eps) - x0) <= bound)
    eps_back = predict_eps_from_xstart(tab, x_t, t, x0)
    bound = per_unit * size * (1 + 1 / tab.sqrt_one_minus_alphas_cumprod + kappa)[:, None]
    assert np.all(np.abs(eps_back - eps) <= bound)


@pytest.mark.parametrize(("name", "T"), SCHEDULES)
def test_xstart_from_xprev_inverts_the_posterior_mean(name: str, T: int) -> None:
    tab = _tables(name, T)
    per_unit = tolerance(Oracle.INVERSE_PAIR_PER_UNIT).atol
    rng = np.random.default_rng(4)
    t = np.arange(T)
    x0 = rng.uniform(-1, 1, (T, 3))
    x_t = rng.standard_normal((T, 3))
    xprev, _, _ = q_posterior_mean_variance(tab, x0, x_t, t)
    size = np.maximum(np.abs(x_t), np.abs(xprev)).max()
    kappa = 1 / (1 - tab.alphas_cumprod)
    coef = tab.posterior_mean_coef1
    bound = per_unit * size * (1 + (1 + tab.posterior_mean_coef2) / coef + kappa)[:, None]
    assert np.all(np.abs(predict_xstart_from_xprev(tab, x_t, t, xprev) - x0) <= bound)


def test_fixed_variances_by_hand() -> None:
    tab = diffusion_tables(np.array([0.1, 0.2, 0.5]))
    t = np.array([0, 1, 2])
    small_var, small_log = model_variance(tab, None, t, model_var_type="FIXED_SMALL", shape=(3, 2))
    large_var, large_log = model_variance(tab, None, t, model_var_type="FIXED_LARGE", shape=(3, 2))
    b1 = 0.2 * 0.1 / 0.28  # β̃_1
    assert_close(small_var[:, 0], [0.0, b1, 0.5 * 0.28 / 0.64], tol=REASSOCIATED)
    assert_close(small_log[:, 0], np.log([b1, b1, 0.5 * 0.28 / 0.64]), tol=REASSOCIATED)
    assert_close(large_var[:, 1], [b1, 0.2, 0.5], tol=REASSOCIATED)
    assert_close(large_log[:, 1], np.log([b1, 0.2, 0.5]), tol=REASSOCIATED)


def test_learned_variance_is_the_log_directly() -> None:
    tab = _tables("cosine", 10)
    v = np.array([[-3.0, 0.5]])
    var, log_var = model_variance(tab, v, np.array([4]), model_var_type="LEARNED", shape=(1, 2))
    assert np.array_equal(log_var, v)
    assert np.array_equal(var, np.exp(v))


@pytest.mark.parametrize(("name", "T"), [*SCHEDULES, ("cosine", 1)])
def test_learned_range_endpoints_are_exactly_the_fixed_logs(name: str, T: int) -> None:
    tab = _tables(name, T)
    t = np.arange(T)
    ones = np.ones((T, 2))
    _, at_plus = model_variance(tab, ones, t, model_var_type="LEARNED_RANGE", shape=(T, 2))
    _, at_minus = model_variance(tab, -ones, t, model_var_type="LEARNED_RANGE", shape=(T, 2))
    assert np.array_equal(at_plus[:, 0], np.log(tab.betas))
    assert np.array_equal(at_minus[:, 1], tab.posterior_log_variance_clipped)
    _, at_zero = model_variance(tab, 0 * ones, t, model_var_type="LEARNED_RANGE", shape=(T, 2))
    midpoint = 0.5 * (np.log(tab.betas) + tab.posterior_log_variance_clipped)
    assert_close(at_zero[:, 0], midpoint, tol=REASSOCIATED)


def _perfect_eps_output(tab: DiffusionTables, x0: np.ndarray, x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
    return predict_eps_from_xstart(tab, x_t, t, x0)


def test_p_mean_variance_mean_types_with_perfect_predictions() -> None:
    tab = _tables("cosine", 50)
    rng = np.random.default_rng(5)
    x0 = rng.uniform(-0.9, 0.9, (4, 2, 3))
    t = np.array([0, 1, 25, 49])
    x_t = q_sample(tab, x0, t, rng.standard_normal(x0.shape))
    post_mean, _, _ = q_posterior_mean_variance(tab, x0, x_t, t)
    common = {"model_var_type": "FIXED_SMALL", "clip_denoised": False}
    out_start = p_mean_variance(tab, x0, x_t, t, model_mean_type="START_X", **common)  # type: ignore[arg-type]
    assert np.array_equal(out_start["pred_xstart"], x0)
    assert np.array_equal(out_start["mean"], post_mean)
    out_prev = p_mean_variance(tab, post_mean, x_t, t, model_mean_type="PREVIOUS_X", **common)  # type: ignore[arg-type]
    assert np.array_equal(out_prev["mean"], post_mean)
    assert np.array_equal(out_prev["pred_xstart"], predict_xstart_from_xprev(tab, x_t, t, post_mean))
    eps_out = _perfect_eps_output(tab, x0, x_t, t)
    out_eps = p_mean_variance(tab, eps_out, x_t, t, model_mean_type="EPSILON", **common)  # type: ignore[arg-type]
    # x̂_0 by [S9] (itself checked against [S6] above), then μ̃(x̂_0, x_t) by [S7]
    assert np.array_equal(out_eps["pred_xstart"], predict_xstart_from_eps(tab, x_t, t, eps_out))
    assert np.array_equal(out_eps["mean"], q_posterior_mean_variance(tab, out_eps["pred_xstart"], x_t, t)[0])
    small_var, small_log = model_variance(tab, None, t, model_var_type="FIXED_SMALL", shape=x0.shape)
    assert np.array_equal(out_eps["variance"], small_var)
    assert np.array_equal(out_eps["log_variance"], small_log)


def test_p_mean_variance_splits_learned_channels() -> None:
    tab = _tables("cosine", 20)
    rng = np.random.default_rng(6)
    x_t = rng.standard_normal((2, 3, 4))
    t = np.array([3, 11])
    output = rng.uniform(-1, 1, (2, 6, 4))
    out = p_mean_variance(tab, output, x_t, t, model_mean_type="START_X", model_var_type="LEARNED_RANGE")
    _, expected_log = model_variance(tab, output[:, 3:], t, model_var_type="LEARNED_RANGE", shape=x_t.shape)
    assert np.array_equal(out["log_variance"], expected_log)
    assert np.array_equal(out["pred_xstart"], output[:, :3])  # within [−1, 1], so clipping is a no-op


def test_denoised_fn_runs_before_clipping() -> None:
    tab = _tables("cosine", 20)
    x_t = np.zeros((1, 2))
    t = np.array([5])
    raw = np.array([[0.5, -0.25]])
    shift: Callable[[np.ndarray], np.ndarray] = lambda x: x + 0.75  # noqa: E731
    kwargs = {"model_mean_type": "START_X", "model_var_type": "FIXED_LARGE"}
    clipped = p_mean_variance(tab, raw, x_t, t, denoised_fn=shift, **kwargs)  # type: ignore[arg-type]
    assert np.array_equal(clipped["pred_xstart"], np.array([[1.0, 0.5]]))
    unclipped = p_mean_variance(tab, raw, x_t, t, denoised_fn=shift, clip_denoised=False, **kwargs)
    assert np.array_equal(unclipped["pred_xstart"], np.array([[1.25, 0.5]]))


# ---------------------------------------------------------------- bad input
TAB = diffusion_tables(get_named_beta_schedule("cosine", 10))
X = np.zeros((2, 3))


@pytest.mark.parametrize(
    ("t", "pattern"),
    [
        (np.array([0, 10]), r"^t: timesteps must lie in \[0, 9\]"),
        (np.array([-1, 0]), r"^t: timesteps must lie"),
        (np.array([0.0, 1.0]), r"^t: expected an integer array"),
        (np.array([[0], [1]]), r"^t: expected shape \(B,\)"),
        (np.array([0, 1, 2]), r"^x_start: expected a leading batch axis of size 3"),
    ],
)
def test_bad_timesteps_are_rejected(t: np.ndarray, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        q_sample(TAB, X, t, X)


def test_noise_and_x_t_shape_mismatches_are_rejected() -> None:
    t = np.array([1, 2])
    with pytest.raises(ValueError, match=r"^noise: expected shape \(2, 3\)"):
        q_sample(TAB, X, t, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"^x_t: expected shape \(2, 3\)"):
        q_posterior_mean_variance(TAB, X, np.zeros((2, 1)), t)
    with pytest.raises(ValueError, match=r"^eps: "):
        predict_xstart_from_eps(TAB, X, t, np.zeros(2))


def test_bad_model_outputs_and_enumerations_are_rejected() -> None:
    t = np.array([1, 2])
    with pytest.raises(ValueError, match=r"^model_output: expected shape \(2, 6\)"):
        p_mean_variance(TAB, X, X, t, model_mean_type="EPSILON", model_var_type="LEARNED")
    with pytest.raises(ValueError, match=r"^model_output: expected shape \(2, 3\)"):
        p_mean_variance(TAB, np.zeros((2, 6)), X, t, model_mean_type="EPSILON", model_var_type="FIXED_SMALL")
    with pytest.raises(ValueError, match=r"^model_mean_type: .*EPSILON, START_X, PREVIOUS_X"):
        p_mean_variance(TAB, X, X, t, model_mean_type="eps", model_var_type="FIXED_SMALL")
    with pytest.raises(
        ValueError, match=r"^model_var_type: .*LEARNED, FIXED_SMALL, FIXED_LARGE, LEARNED_RANGE"
    ):
        p_mean_variance(TAB, X, X, t, model_mean_type="EPSILON", model_var_type="SMALL")
    with pytest.raises(ValueError, match=r"^model_var_values: must be None"):
        model_variance(TAB, X, t, model_var_type="FIXED_SMALL", shape=(2, 3))
    with pytest.raises(ValueError, match=r"^model_var_values: required"):
        model_variance(TAB, None, t, model_var_type="LEARNED", shape=(2, 3))
