"""Gaussian KL [S15], the approximate CDF [S16] and the discretized likelihood [S17] against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr

from reference import approx_standard_normal_cdf, discretized_gaussian_log_likelihood, normal_kl
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance

REASSOCIATED = tolerance(Oracle.REASSOCIATED_FORMULA)  # the same closed form written differently

PIXEL_CENTERS = np.arange(256) / 127.5 - 1.0


def _log_normal_pdf(x: float, mean: float, logvar: float) -> float:
    return -0.5 * (math.log(2.0 * math.pi) + logvar + (x - mean) ** 2 / math.exp(logvar))


@pytest.mark.parametrize(
    ("m1", "lv1", "m2", "lv2"),
    [
        (0.0, 0.0, 0.0, 0.0),
        (0.3, -1.0, -0.2, 0.5),
        (1.5, math.log(0.01), 1.4, math.log(0.02)),
        (-2.0, 1.0, 3.0, -0.5),
        (0.0, math.log(1e-4), 0.01, math.log(1e-3)),
    ],
)
def test_normal_kl_matches_quadrature(m1: float, lv1: float, m2: float, lv2: float) -> None:
    tol = tolerance(Oracle.NORMAL_KL_QUADRATURE)

    def integrand(x: float) -> float:
        log_p = _log_normal_pdf(x, m1, lv1)
        return math.exp(log_p) * (log_p - _log_normal_pdf(x, m2, lv2))

    sd = math.exp(0.5 * lv1)
    # integrate over ±40 sd of p (the mass beyond is < 1e-300) with the peak as a break point
    value, abserr = integrate.quad(
        integrand, m1 - 40 * sd, m1 + 40 * sd, points=[m1], epsabs=1e-12, epsrel=1e-10, limit=200
    )
    assert abserr < tol.atol
    got = float(normal_kl(m1, lv1, m2, lv2))
    assert_close(got, value, tol=tol)


def test_normal_kl_broadcasts_and_is_zero_for_equal_gaussians() -> None:
    means = np.linspace(-1, 1, 6).reshape(2, 3)
    assert np.array_equal(normal_kl(means, -0.5, means, -0.5), np.zeros((2, 3)))
    assert normal_kl(means, 0.0, 0.0, np.zeros((1, 3))).shape == (2, 3)


def test_approx_cdf_deviation_from_exact_cdf_is_as_documented() -> None:
    tol = tolerance(Oracle.APPROX_CDF_MAX_DEVIATION)
    x = np.linspace(-12.0, 12.0, 240_001)
    deviation = np.abs(approx_standard_normal_cdf(x) - ndtr(x))
    assert deviation.max() <= tol.atol
    # The approximation really is approximate: it is not the exact CDF in disguise.
    assert deviation.max() > 0.9 * tol.atol
    # Symmetry Φ(−x) = 1 − Φ(x) holds exactly for the tanh form.
    assert_close(
        approx_standard_normal_cdf(-x),
        1.0 - approx_standard_normal_cdf(x),
        tol=REASSOCIATED,
    )


def _exact_bin_probabilities(mean: float, sigma: float) -> np.ndarray:
    upper = ndtr((PIXEL_CENTERS + 1 / 255 - mean) / sigma)
    lower = ndtr((PIXEL_CENTERS - 1 / 255 - mean) / sigma)
    upper[-1] = 1.0
    lower[0] = 0.0
    probabilities: np.ndarray = upper - lower
    return probabilities


@pytest.mark.parametrize(
    ("mean", "sigma"), [(0.0, 0.01), (0.37, 0.05), (-0.99, 0.2), (1.0, 0.02), (0.5, 1.0)]
)
def test_discretized_likelihood_per_bin_within_the_cdf_bias(mean: float, sigma: float) -> None:
    cdf_bias = tolerance(Oracle.APPROX_CDF_MAX_DEVIATION).atol
    extra = tolerance(Oracle.DISCRETIZED_BIN_ROUNDING).atol
    x = PIXEL_CENTERS
    log_p = discretized_gaussian_log_likelihood(
        x, means=np.full_like(x, mean), log_scales=np.full_like(x, math.log(sigma))
    )
    exact = _exact_bin_probabilities(mean, sigma)
    assert np.all(np.abs(np.exp(log_p) - exact) <= 2 * cdf_bias + extra)


@pytest.mark.parametrize(
    ("mean", "sigma"), [(0.0, 0.01), (0.37, 0.05), (-0.99, 0.2), (1.0, 0.02), (0.1, 3.0)]
)
def test_discretized_likelihood_sums_to_one_over_the_256_bins(mean: float, sigma: float) -> None:
    tol = tolerance(Oracle.DISCRETIZED_SUM_TO_ONE)
    x = PIXEL_CENTERS
    log_p = discretized_gaussian_log_likelihood(
        x, means=np.full_like(x, mean), log_scales=np.full_like(x, math.log(sigma))
    )
    assert abs(np.exp(log_p).sum() - 1.0) <= tol.atol


def test_discretized_likelihood_edge_bins_are_open_ended() -> None:
    # x = −1 gets Φ̃(upper) (all mass below), x = 1 gets 1 − Φ̃(lower).
    log_p = discretized_gaussian_log_likelihood(
        np.array([-1.0, 1.0]), means=np.array([-3.0, 3.0]), log_scales=np.zeros(2)
    )
    assert_close(
        np.exp(log_p),
        approx_standard_normal_cdf(np.array([2 + 1 / 255] * 2)),
        tol=REASSOCIATED,
    )


def test_discretized_likelihood_floor_is_1e_minus_12() -> None:
    log_p = discretized_gaussian_log_likelihood(
        np.array([0.0]), means=np.array([0.9]), log_scales=np.array([-8.0])
    )
    assert_close(log_p[0], math.log(1e-12), tol=REASSOCIATED)


@pytest.mark.parametrize("bad", ["means", "log_scales"])
def test_discretized_likelihood_rejects_mismatched_shapes(bad: str) -> None:
    kwargs = {"means": np.zeros(4), "log_scales": np.zeros(4)}
    kwargs[bad] = np.zeros(3)
    with pytest.raises(ValueError, match=rf"^{bad}: expected shape \(4,\)"):
        discretized_gaussian_log_likelihood(np.zeros(4), **kwargs)
