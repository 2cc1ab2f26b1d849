"""Sampler steps and guidance [S29]–[S31], §7."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference import (
    condition_mean,
    condition_score,
    ddim_reverse_step,
    ddim_step,
    diffusion_tables,
    get_named_beta_schedule,
    p_mean_variance,
    p_sample_step,
    q_posterior_mean_variance,
)
from reference.schedule import DiffusionTables
from reference.steps import ddim_sigma
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance

FloatArray = np.ndarray


@pytest.fixture(scope="module")
def tab() -> DiffusionTables:
    return diffusion_tables(get_named_beta_schedule("cosine", 50))


def _perfect_out(tab: DiffusionTables, x0: FloatArray, x_t: FloatArray, step: int) -> dict[str, FloatArray]:
    """p_mean_variance of a model that returns the true ε of the fixed x_0 (a perfect denoiser)."""
    t = np.full(x_t.shape[0], step)
    eps = (x_t - tab.sqrt_alphas_cumprod[step] * x0) / tab.sqrt_one_minus_alphas_cumprod[step]
    return p_mean_variance(
        tab, eps, x_t, t, model_mean_type="EPSILON", model_var_type="FIXED_SMALL", clip_denoised=False
    )


@pytest.mark.parametrize("start", [49, 20, 1])
def test_ddim_then_inversion_returns_the_start_for_a_perfect_denoiser(
    tab: DiffusionTables, start: int
) -> None:
    rng = np.random.default_rng(start)
    x0 = rng.uniform(-0.9, 0.9, (3, 2, 4))
    x_start = tab.sqrt_alphas_cumprod[start] * x0 + tab.sqrt_one_minus_alphas_cumprod[
        start
    ] * rng.standard_normal(x0.shape)
    x = x_start
    largest = np.abs(x).max()
    for step in range(start, 0, -1):  # down to the level ᾱ_0
        x = ddim_step(tab, _perfect_out(tab, x0, x, step), x, np.full(3, step), None, 0.0)
        largest = max(largest, np.abs(x).max())
    for step in range(0, start):  # back up to the level ᾱ_start
        x = ddim_reverse_step(tab, _perfect_out(tab, x0, x, step), x, np.full(3, step))
        largest = max(largest, np.abs(x).max())
    per_unit = tolerance(Oracle.DDIM_ROUNDTRIP_PER_STEP).atol
    bound = per_unit * largest * np.sum(1.0 / tab.sqrt_alphas_cumprod[: start + 1])
    assert np.abs(x - x_start).max() <= bound


def test_ddim_sigma_at_eta_one_is_the_posterior_std(tab: DiffusionTables) -> None:
    t = np.arange(1, 50)
    sigma = ddim_sigma(tab, t, 1.0, 1)
    assert_close(sigma**2, tab.posterior_variance[1:], tol=tolerance(Oracle.DDIM_SIGMA_IDENTITY))
    assert np.array_equal(ddim_sigma(tab, t, 0.0, 1), np.zeros(49))


def test_ddim_step_eta_one_equals_the_ancestral_step_with_fixed_small_variance(tab: DiffusionTables) -> None:
    # With η = 1, σ² = β̃ and √(1 − ᾱ_prev − σ²)·ε̂ + √ᾱ_prev·x̂_0 equals the posterior mean μ̃(x̂_0, x_t).
    rng = np.random.default_rng(7)
    x_t = rng.standard_normal((4, 3))
    t = np.array([1, 10, 30, 49])
    out = p_mean_variance(
        tab, rng.standard_normal((4, 3)), x_t, t, model_mean_type="EPSILON", model_var_type="FIXED_SMALL"
    )
    z = rng.standard_normal(x_t.shape)
    assert_close(
        ddim_step(tab, out, x_t, t, z, 1.0),
        p_sample_step(out, t, z),
        tol=tolerance(Oracle.DDIM_SIGMA_IDENTITY),
    )


def test_p_sample_step_adds_no_noise_at_t0(tab: DiffusionTables) -> None:
    rng = np.random.default_rng(8)
    x_t = rng.standard_normal((2, 3))
    t = np.array([0, 7])
    out = p_mean_variance(tab, x_t, x_t, t, model_mean_type="EPSILON", model_var_type="FIXED_LARGE")
    z = rng.standard_normal(x_t.shape)
    sample = p_sample_step(out, t, z)
    assert np.array_equal(sample[0], out["mean"][0])
    assert_close(
        sample[1], out["mean"][1] + math.sqrt(tab.betas[7]) * z[1], tol=tolerance(Oracle.REASSOCIATED_FORMULA)
    )
    ddim = ddim_step(tab, out, x_t, t, z, 0.5)
    assert np.array_equal(ddim[0], out["pred_xstart"][0])  # ᾱ_prev = 1 at t = 0: the step returns x̂_0


def test_guidance_with_zero_gradient_changes_nothing(tab: DiffusionTables) -> None:
    rng = np.random.default_rng(9)
    x_t = rng.standard_normal((2, 3))
    t = np.array([3, 40])
    out = p_mean_variance(
        tab,
        rng.standard_normal((2, 3)),
        x_t,
        t,
        model_mean_type="EPSILON",
        model_var_type="FIXED_SMALL",
        clip_denoised=False,
    )
    assert np.array_equal(condition_mean(out, np.zeros_like(x_t)), out["mean"])
    same = condition_score(tab, out, x_t, t, np.zeros_like(x_t))
    assert np.array_equal(same["variance"], out["variance"])
    assert np.array_equal(same["log_variance"], out["log_variance"])


@pytest.mark.parametrize("grad_scale", [0.0, 1.0])
def test_condition_mean_and_score_by_hand(tab: DiffusionTables, grad_scale: float) -> None:
    rng = np.random.default_rng(10)
    x_t = rng.standard_normal((2, 3))
    t = np.array([3, 40])
    out = p_mean_variance(
        tab,
        rng.standard_normal((2, 3)),
        x_t,
        t,
        model_mean_type="EPSILON",
        model_var_type="FIXED_LARGE",
        clip_denoised=False,
    )
    g = grad_scale * rng.standard_normal(x_t.shape)
    assert_close(
        condition_mean(out, g), out["mean"] + out["variance"] * g, tol=tolerance(Oracle.REASSOCIATED_FORMULA)
    )
    cond = condition_score(tab, out, x_t, t, g)
    # ε' = ε̂ − √(1 − ᾱ_t) g, so x̂_0' = (x_t − √(1 − ᾱ_t) ε')/√ᾱ_t = x̂_0 + (1 − ᾱ_t)/√ᾱ_t · g
    abar = tab.alphas_cumprod[t][:, None]
    expected_x0 = out["pred_xstart"] + (1 - abar) / np.sqrt(abar) * g
    size = np.abs(x_t).max() + np.abs(expected_x0).max()
    kappa = 1 / (1 - abar)
    bound = tolerance(Oracle.INVERSE_PAIR_PER_UNIT).atol * size * (1 + 1 / np.sqrt(abar) + kappa)
    assert np.all(np.abs(cond["pred_xstart"] - expected_x0) <= bound)
    assert np.array_equal(cond["mean"], q_posterior_mean_variance(tab, cond["pred_xstart"], x_t, t)[0])


def test_steps_reject_bad_input(tab: DiffusionTables) -> None:
    x_t = np.zeros((2, 3))
    t = np.array([1, 2])
    out = p_mean_variance(tab, x_t, x_t, t, model_mean_type="EPSILON", model_var_type="FIXED_SMALL")
    with pytest.raises(ValueError, match=r"^noise: expected shape \(2, 3\)"):
        p_sample_step(out, t, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"^eta: "):
        ddim_step(tab, out, x_t, t, x_t, -0.5)
    with pytest.raises(ValueError, match=r"^noise: required when eta > 0"):
        ddim_step(tab, out, x_t, t, None, 0.5)
    with pytest.raises(ValueError, match=r"^out: missing keys \['pred_xstart'\]"):
        ddim_reverse_step(tab, {k: v for k, v in out.items() if k != "pred_xstart"}, x_t, t)
    with pytest.raises(ValueError, match=r"^t: timesteps must lie in \[0, 49\]"):
        ddim_step(tab, out, x_t, np.array([1, 50]), x_t, 0.0)
    with pytest.raises(ValueError, match=r"^grad: expected shape \(2, 3\)"):
        condition_mean(out, np.zeros(3))


def test_tempered_noise_and_initial_latent_scale_by_hand() -> None:
    """[S45], [S46]: τ·z and τ₀·z, exact in float64 for these powers of two; τ <= 0 or nan rejected."""
    from reference.steps import initial_latent, tempered_noise

    z = np.array([1.0, -2.0, 0.25])
    assert np.array_equal(tempered_noise(z, 0.5), np.array([0.5, -1.0, 0.125]))
    assert np.array_equal(initial_latent(z, 2.0), np.array([2.0, -4.0, 0.5]))
    assert np.array_equal(tempered_noise(z, 1.0), z)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="temperature"):
            tempered_noise(z, bad)
        with pytest.raises(ValueError, match="init_temperature"):
            initial_latent(z, bad)


def test_ddim_inversion_chains_the_reverse_step(tab: DiffusionTables) -> None:
    """[S47]: the loop is R_{T−1} ∘ … ∘ R_0 of [S31] (the perfect denoiser of a point x₀*), the same
    float64 operations as the steps applied by hand, so equal exactly."""
    from reference.steps import ddim_inversion

    rng = np.random.default_rng(3)
    x0 = rng.uniform(-1.0, 1.0, size=(2, 3))
    point = rng.uniform(-1.0, 1.0, size=(2, 3))

    def pmv(x: FloatArray, t: np.ndarray) -> dict[str, FloatArray]:  # type: ignore[type-arg]
        return _perfect_out(tab, point, x, int(t[0]))

    x = x0
    for step in range(tab.num_timesteps):
        x = ddim_reverse_step(tab, pmv(x, np.full(2, step)), x, np.full(2, step))
    latent = ddim_inversion(tab, pmv, x0)
    assert np.array_equal(latent, x)
