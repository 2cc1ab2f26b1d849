"""v-prediction, min-SNR-γ weighting and the VLB weight λ in the reference [S40]–[S44], against
independent mathematics (the forward process they invert, closed forms, the loss-type identities)."""

from __future__ import annotations

import numpy as np
import pytest

from reference.objectives import (
    hybrid_vlb_factor,
    min_snr_weight,
    signal_to_noise_ratio,
    training_losses,
)
from reference.process import (
    p_mean_variance,
    predict_eps_from_v,
    predict_xstart_from_v,
    q_sample,
    velocity,
)
from reference.schedule import diffusion_tables, get_named_beta_schedule
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance

ROUND_TRIP = tolerance(Oracle.VELOCITY_ROUND_TRIP)
REASSOCIATED = tolerance(Oracle.REASSOCIATED_FORMULA)


@pytest.fixture(scope="module")
def tab():  # type: ignore[no-untyped-def]
    return diffusion_tables(get_named_beta_schedule("cosine", 50))


def _draw(seed: int, num_timesteps: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, size=(6, 2, 3, 3))
    eps = rng.standard_normal(x0.shape)
    t = np.array([0, 1, 7, 25, num_timesteps - 2, num_timesteps - 1])
    return x0, eps, t


def test_v_inverts_the_forward_process(tab) -> None:  # type: ignore[no-untyped-def]
    """With x_t = √ᾱ x_0 + √(1 − ᾱ) ε and v = √ᾱ ε − √(1 − ᾱ) x_0, [S41] returns x_0 and ε exactly."""
    x0, eps, t = _draw(0, tab.num_timesteps)
    x_t = q_sample(tab, x0, t, eps)
    v = velocity(tab, x0, t, eps)
    assert_close(predict_xstart_from_v(tab, x_t, t, v), x0, tol=ROUND_TRIP, label="x0 from v")
    assert_close(predict_eps_from_v(tab, x_t, t, v), eps, tol=ROUND_TRIP, label="eps from v")


def test_v_is_the_rotation_of_x0_and_eps(tab) -> None:  # type: ignore[no-untyped-def]
    """(x_t, v) is (x_0, ε) rotated by the angle φ_t with cos φ = √ᾱ: lengths are preserved."""
    x0, eps, t = _draw(1, tab.num_timesteps)
    x_t = q_sample(tab, x0, t, eps)
    v = velocity(tab, x0, t, eps)
    assert_close(x_t**2 + v**2, x0**2 + eps**2, tol=ROUND_TRIP, label="|(x_t, v)| = |(x_0, ε)|")


def test_velocity_model_gives_the_same_reverse_step_as_the_matching_eps_model(tab) -> None:  # type: ignore[no-untyped-def]
    """A v-model whose v̂ = √ᾱ ε̂ − √(1 − ᾱ) x̂_0(ε̂) defines the same p_θ as the ε-model ε̂ [S9], [S41]."""
    x0, eps, t = _draw(2, tab.num_timesteps)
    x_t = q_sample(tab, x0, t, eps)
    eps_hat = eps + 0.3 * np.sin(3 * x_t)  # an imperfect ε-model
    a = np.sqrt(tab.alphas_cumprod[t]).reshape(-1, 1, 1, 1)
    s = np.sqrt(1 - tab.alphas_cumprod[t]).reshape(-1, 1, 1, 1)
    x0_hat = (x_t - s * eps_hat) / a
    v_hat = a * eps_hat - s * x0_hat
    kwargs = {"model_var_type": "FIXED_LARGE", "clip_denoised": False}
    by_eps = p_mean_variance(tab, eps_hat, x_t, t, model_mean_type="EPSILON", **kwargs)
    by_v = p_mean_variance(tab, v_hat, x_t, t, model_mean_type="VELOCITY", **kwargs)
    tol = tolerance(Oracle.VELOCITY_VS_EPS_MODEL)
    assert_close(by_v["pred_xstart"], by_eps["pred_xstart"], tol=tol, label="pred_xstart")
    assert_close(by_v["mean"], by_eps["mean"], tol=tol, label="mean")


def test_snr_closed_form(tab) -> None:  # type: ignore[no-untyped-def]
    t = np.arange(tab.num_timesteps)
    abar = np.cumprod(1.0 - get_named_beta_schedule("cosine", 50))
    assert_close(signal_to_noise_ratio(tab, t), abar / (1 - abar), tol=REASSOCIATED, label="SNR")


def test_min_snr_weights_closed_forms() -> None:
    snr = np.array([0.5, 5.0, 20.0])
    np.testing.assert_array_equal(min_snr_weight(snr, 5.0, "EPSILON"), [1.0, 1.0, 0.25])
    np.testing.assert_array_equal(min_snr_weight(snr, 5.0, "START_X"), [0.5, 5.0, 5.0])
    assert_close(min_snr_weight(snr, 5.0, "VELOCITY"), np.array([0.5 / 1.5, 5 / 6, 5 / 21]), tol=REASSOCIATED)
    with pytest.raises(ValueError, match="min_snr_gamma must be > 0"):
        min_snr_weight(snr, 0.0, "EPSILON")
    with pytest.raises(ValueError, match="PREVIOUS_X"):
        min_snr_weight(snr, 5.0, "PREVIOUS_X")


def test_the_three_weights_are_one_weighting_of_the_x0_error() -> None:
    """Hang et al.: each form weighs ‖x̂_0 − x_0‖² by min(SNR, γ); the ε-MSE is SNR·‖x̂_0 − x_0‖² and the
    v-MSE (SNR + 1)·‖x̂_0 − x_0‖², so dividing by those gives the same effective weight."""
    snr = np.geomspace(1e-3, 1e3, 13)
    gamma = 5.0
    target = np.minimum(snr, gamma)
    assert_close(min_snr_weight(snr, gamma, "EPSILON") * snr, target, tol=REASSOCIATED, label="EPSILON")
    np.testing.assert_array_equal(min_snr_weight(snr, gamma, "START_X"), target)
    assert_close(min_snr_weight(snr, gamma, "VELOCITY") * (snr + 1), target, tol=REASSOCIATED, label="v")


@pytest.mark.parametrize("mean_type", ["EPSILON", "START_X", "VELOCITY"])
def test_min_snr_multiplies_only_the_mse(tab, mean_type: str) -> None:  # type: ignore[no-untyped-def]
    x0, eps, t = _draw(3, tab.num_timesteps)
    out = np.random.default_rng(4).standard_normal((6, 4, 3, 3))
    common = {"model_mean_type": mean_type, "model_var_type": "LEARNED_RANGE", "loss_type": "RESCALED_MSE"}
    plain = training_losses(tab, out, x0, t, eps, **common)
    weighted = training_losses(tab, out, x0, t, eps, loss_weighting="min_snr", min_snr_gamma=2.0, **common)
    w = min_snr_weight(signal_to_noise_ratio(tab, t), 2.0, mean_type)
    np.testing.assert_array_equal(weighted["mse"], plain["mse"] * w)
    np.testing.assert_array_equal(weighted["vb"], plain["vb"])
    np.testing.assert_array_equal(weighted["loss"], weighted["mse"] + weighted["vb"])


def test_vlb_weight_reproduces_the_loss_types(tab) -> None:  # type: ignore[no-untyped-def]
    x0, eps, t = _draw(5, tab.num_timesteps)
    out = np.random.default_rng(6).standard_normal((6, 4, 3, 3))
    common = {"model_mean_type": "EPSILON", "model_var_type": "LEARNED_RANGE"}
    rescaled = training_losses(tab, out, x0, t, eps, loss_type="RESCALED_MSE", **common)
    mse = training_losses(tab, out, x0, t, eps, loss_type="MSE", **common)
    lam_hybrid = training_losses(tab, out, x0, t, eps, loss_type="MSE", vlb_weight=1e-3, **common)
    lam_one = training_losses(tab, out, x0, t, eps, loss_type="RESCALED_MSE", vlb_weight=1 / 50, **common)
    # λ·T against T/1000 and (1/T)·T against 1: one rounding apart in float64
    assert_close(lam_hybrid["loss"], rescaled["loss"], tol=REASSOCIATED, label="λ = 1e-3 vs RESCALED_MSE")
    assert_close(lam_one["loss"], mse["loss"], tol=REASSOCIATED, label="λ = 1/T vs MSE")
    assert hybrid_vlb_factor(0.25, 40) == 10.0
    with pytest.raises(ValueError, match="vlb_weight must be a finite number >= 0"):
        hybrid_vlb_factor(-1e-3, 40)
