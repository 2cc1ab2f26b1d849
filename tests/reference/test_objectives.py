"""VLB terms, prior, full bound and training losses [S18]–[S23]."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference import (
    diffusion_tables,
    full_bound_bpd,
    get_named_beta_schedule,
    predict_eps_from_xstart,
    prior_bpd,
    q_posterior_mean_variance,
    q_sample,
    training_losses,
    vb_term_bpd,
)
from reference.schedule import DiffusionTables
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance

REASSOCIATED = tolerance(Oracle.REASSOCIATED_FORMULA)  # the same closed form written differently


LN2 = math.log(2.0)


def _pixels(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=shape) / 127.5 - 1.0


def _tanh_cdf(x: np.ndarray | float) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


@pytest.fixture(scope="module")
def tab() -> DiffusionTables:
    return diffusion_tables(get_named_beta_schedule("cosine", 40))


def test_vb_term_at_t0_is_the_decoder_nll_in_bits(tab: DiffusionTables) -> None:
    rng = np.random.default_rng(0)
    x0 = _pixels(rng, (2, 3, 2, 2))
    x0[0, 0, 0, 0], x0[1, 2, 1, 1] = -1.0, 1.0  # include both open-ended edge bins
    t = np.zeros(2, dtype=np.int64)
    x_t = q_sample(tab, x0, t, rng.standard_normal(x0.shape))
    terms = vb_term_bpd(tab, x0, x0, x_t, t, model_mean_type="START_X", model_var_type="FIXED_LARGE")
    # At t = 0 the posterior mean is x_0 itself (c1 = 1, c2 = 0); FIXED_LARGE uses β̃_1 there.
    sigma = math.sqrt(tab.posterior_variance[1])
    upper = np.where(x0 > 0.999, 1.0, _tanh_cdf((1 / 255) / sigma))
    lower = np.where(x0 < -0.999, 0.0, _tanh_cdf((-1 / 255) / sigma))
    expected = -np.log(upper - lower).reshape(2, -1).mean(axis=1) / LN2
    assert_close(terms["output"], expected, tol=REASSOCIATED)


def test_vb_term_for_t_positive_matches_closed_form_kl(tab: DiffusionTables) -> None:
    # Same mean, log variances L and L + δ: KL = ½(−1 + δ + e^{−δ}) per element.
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (3, 2, 4))
    t = np.array([1, 17, 39])
    x_t = q_sample(tab, x0, t, rng.standard_normal(x0.shape))
    _, _, post_log = q_posterior_mean_variance(tab, x0, x_t, t)
    delta = rng.uniform(-2, 2, x0.shape)
    output = np.concatenate([x0, post_log + delta], axis=1)
    terms = vb_term_bpd(
        tab, output, x0, x_t, t, model_mean_type="START_X", model_var_type="LEARNED", clip_denoised=False
    )
    expected = (0.5 * (-1 + delta + np.exp(-delta))).reshape(3, -1).mean(axis=1) / LN2
    assert_close(terms["output"], expected, tol=REASSOCIATED)


def test_prior_bpd_matches_closed_form(tab: DiffusionTables) -> None:
    x0 = np.array([[0.0, 1.0], [-1.0, 0.5]])
    abar = float(np.prod(1.0 - tab.betas))
    mu, var = math.sqrt(abar) * x0, 1.0 - abar
    expected = (0.5 * (var + mu**2 - 1.0 - math.log(var))).mean(axis=1) / LN2
    assert_close(prior_bpd(tab, x0), expected, tol=tolerance(Oracle.CANCELLING_CLOSED_FORM))


def _perfect_eps_model(tab: DiffusionTables, x0: np.ndarray):  # type: ignore[no-untyped-def]
    def model(x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
        return predict_eps_from_xstart(tab, x_t, t, x0)

    return model


def test_full_bound_of_perfect_model_is_finite_and_dominated_by_the_decoder(tab: DiffusionTables) -> None:
    rng = np.random.default_rng(2)
    x0 = _pixels(rng, (2, 3, 4, 4))
    noises = rng.standard_normal((tab.num_timesteps, *x0.shape))
    kwargs = {"model_mean_type": "EPSILON", "model_var_type": "FIXED_SMALL", "clip_denoised": False}
    res = full_bound_bpd(tab, _perfect_eps_model(tab, x0), x0, noises, **kwargs)  # type: ignore[arg-type]
    assert set(res) == {"total_bpd", "prior_bpd", "vb", "xstart_mse", "mse"}
    assert res["vb"].shape == (2, tab.num_timesteps)
    assert np.all(np.isfinite(res["total_bpd"]))
    assert_close(res["total_bpd"], res["prior_bpd"] + res["vb"].sum(axis=1), tol=REASSOCIATED)
    kl_tol = tolerance(Oracle.PERFECT_MODEL_KL).atol
    assert np.all(np.abs(res["vb"][:, 1:]) <= kl_tol)
    assert np.all(res["vb"][:, 0] >= 0.99 * res["total_bpd"])
    assert np.all(res["vb"][:, 0] > 0.0)
    # the perfect model recovers x_0 and ε up to the rounding budget of the [S9] inverse pair
    per_unit = tolerance(Oracle.INVERSE_PAIR_PER_UNIT).atol
    abar = tab.alphas_cumprod
    size = 1.0 + np.abs(noises).max()
    kappa = 1 / (1 - abar)
    assert np.all(res["xstart_mse"] <= (per_unit * size * (1 + 1 / np.sqrt(abar) + kappa)) ** 2)
    assert np.all(res["mse"] <= (per_unit * size * (2 + 1 / np.sqrt(1 - abar) + 2 * kappa)) ** 2)
    # a model that always predicts ε = 0 does worse on the bound
    zero = full_bound_bpd(tab, lambda x, t: np.zeros_like(x), x0, noises, **kwargs)  # type: ignore[arg-type]
    assert np.all(zero["total_bpd"] > res["total_bpd"])


def test_full_bound_uses_noises_t_at_step_t(tab: DiffusionTables) -> None:
    rng = np.random.default_rng(3)
    x0 = _pixels(rng, (1, 2))
    noises = rng.standard_normal((tab.num_timesteps, 1, 2))
    seen: list[tuple[int, np.ndarray]] = []

    def model(x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
        seen.append((int(t[0]), x_t.copy()))
        return np.zeros_like(x_t)

    full_bound_bpd(tab, model, x0, noises, model_mean_type="EPSILON", model_var_type="FIXED_LARGE")
    assert sorted(step for step, _ in seen) == list(range(tab.num_timesteps))
    for step, x_t in seen:
        assert np.array_equal(x_t, q_sample(tab, x0, np.array([step]), noises[step]))


def test_full_bound_rejects_bad_noise_shape(tab: DiffusionTables) -> None:
    with pytest.raises(ValueError, match=r"^noises: expected shape \(40, 1, 2\)"):
        full_bound_bpd(
            tab,
            lambda x, t: x,
            np.zeros((1, 2)),
            np.zeros((39, 1, 2)),
            model_mean_type="EPSILON",
            model_var_type="FIXED_SMALL",
        )


@pytest.mark.parametrize("mean_type", ["EPSILON", "START_X", "PREVIOUS_X"])
def test_mse_target_by_mean_type(tab: DiffusionTables, mean_type: str) -> None:
    rng = np.random.default_rng(4)
    x0 = rng.uniform(-1, 1, (2, 3))
    noise = rng.standard_normal(x0.shape)
    t = np.array([0, 30])
    x_t = q_sample(tab, x0, t, noise)
    target = {
        "EPSILON": noise,
        "START_X": x0,
        "PREVIOUS_X": q_posterior_mean_variance(tab, x0, x_t, t)[0],
    }[mean_type]
    for offset, expected_mse in ((0.0, 0.0), (0.5, 0.25)):
        terms = training_losses(
            tab,
            target + offset,
            x0,
            t,
            noise,
            model_mean_type=mean_type,
            model_var_type="FIXED_SMALL",
            loss_type="MSE",
        )
        assert set(terms) == {"loss", "mse"}
        assert_close(terms["mse"], np.full(2, expected_mse), tol=REASSOCIATED)
        assert np.array_equal(terms["loss"], terms["mse"])


def test_hybrid_and_kl_losses_weigh_the_vb_term(tab: DiffusionTables) -> None:
    rng = np.random.default_rng(5)
    x0 = rng.uniform(-1, 1, (3, 2, 2))
    noise = rng.standard_normal(x0.shape)
    t = np.array([0, 5, 39])
    output = rng.uniform(-2, 2, (3, 4, 2))  # START_X mean part partly outside [−1, 1]
    common = {"model_mean_type": "START_X", "model_var_type": "LEARNED_RANGE"}
    x_t = q_sample(tab, x0, t, noise)
    vb = vb_term_bpd(tab, output, x0, x_t, t, clip_denoised=False, **common)["output"]
    vb_clipped = vb_term_bpd(tab, output, x0, x_t, t, clip_denoised=True, **common)["output"]
    assert not np.allclose(vb, vb_clipped)  # so the next checks do see the clip_denoised=False choice

    mse = training_losses(tab, output, x0, t, noise, loss_type="MSE", **common)
    assert set(mse) == {"loss", "mse", "vb"}
    assert np.array_equal(mse["vb"], vb)
    assert_close(
        mse["mse"],
        ((output[:, :2] - x0) ** 2).reshape(3, -1).mean(axis=1),
        tol=REASSOCIATED,
    )
    assert np.array_equal(mse["loss"], mse["mse"] + mse["vb"])
    rescaled = training_losses(tab, output, x0, t, noise, loss_type="RESCALED_MSE", **common)
    assert_close(rescaled["vb"], vb * 40 / 1000, tol=REASSOCIATED)
    assert np.array_equal(rescaled["mse"], mse["mse"])
    kl = training_losses(tab, output, x0, t, noise, loss_type="KL", **common)
    assert set(kl) == {"loss"}
    assert np.array_equal(kl["loss"], vb)
    rescaled_kl = training_losses(tab, output, x0, t, noise, loss_type="RESCALED_KL", **common)
    assert_close(rescaled_kl["loss"], 40 * vb, tol=REASSOCIATED)


def test_training_losses_rejects_bad_input(tab: DiffusionTables) -> None:
    x0 = np.zeros((2, 3))
    t = np.array([1, 2])
    common = {"model_mean_type": "EPSILON", "model_var_type": "FIXED_SMALL"}
    with pytest.raises(ValueError, match=r"^loss_type: .*MSE, RESCALED_MSE, KL, RESCALED_KL"):
        training_losses(tab, x0, x0, t, x0, loss_type="L1", **common)
    with pytest.raises(ValueError, match=r"^noise: expected shape \(2, 3\)"):
        training_losses(tab, x0, x0, t, np.zeros((2, 2)), loss_type="MSE", **common)
    with pytest.raises(ValueError, match=r"^t: timesteps must lie in \[0, 39\]"):
        training_losses(tab, x0, x0, np.array([1, 40]), x0, loss_type="MSE", **common)
