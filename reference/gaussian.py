"""Gaussian KL, the approximate normal CDF and the discretized 8-bit likelihood ([S15]–[S17]), float64."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import FloatArray, as_float64, check_same_shape

BIN_HALF_WIDTH = 1.0 / 255.0
EDGE_THRESHOLD = 0.999
PROBABILITY_FLOOR = 1e-12


def normal_kl(mean1: ArrayLike, logvar1: ArrayLike, mean2: ArrayLike, logvar2: ArrayLike) -> FloatArray:
    """KL(N(m1, e^{lv1}) ‖ N(m2, e^{lv2})) = ½(−1 + lv2 − lv1 + e^{lv1−lv2} + (m1 − m2)² e^{−lv2}) [S15].

    Elementwise in nats; the four arguments broadcast against each other.
    """
    m1, lv1 = as_float64(mean1, "mean1"), as_float64(logvar1, "logvar1")
    m2, lv2 = as_float64(mean2, "mean2"), as_float64(logvar2, "logvar2")
    return 0.5 * (-1.0 + lv2 - lv1 + np.exp(lv1 - lv2) + (m1 - m2) ** 2 * np.exp(-lv2))


def approx_standard_normal_cdf(x: ArrayLike) -> FloatArray:
    """Φ(x) ≈ ½(1 + tanh(√(2/π)(x + 0.044715 x³))) [S16]."""
    z = as_float64(x, "x")
    return 0.5 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


def discretized_gaussian_log_likelihood(
    x: ArrayLike, *, means: ArrayLike, log_scales: ArrayLike
) -> FloatArray:
    """log ∫_bin N(u; μ, e^{2·log_scale}) du over the 8-bit bin of x, edge bins open-ended [S17].

    cdf± = Φ((x − μ ± 1/255)/σ); x < −0.999: log max(cdf+, 1e−12); x > 0.999: log max(1 − cdf−, 1e−12);
    otherwise log max(cdf+ − cdf−, 1e−12).  ``x``, ``means`` and ``log_scales`` must share one shape.
    """
    x_arr = as_float64(x, "x")
    means_arr = as_float64(means, "means")
    log_scales_arr = as_float64(log_scales, "log_scales")
    check_same_shape(means_arr, "means", x_arr, "x")
    check_same_shape(log_scales_arr, "log_scales", x_arr, "x")
    centered = x_arr - means_arr
    inv_stdv = np.exp(-log_scales_arr)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + BIN_HALF_WIDTH))
    cdf_minus = approx_standard_normal_cdf(inv_stdv * (centered - BIN_HALF_WIDTH))
    log_cdf_plus = np.log(np.maximum(cdf_plus, PROBABILITY_FLOOR))
    log_one_minus_cdf_minus = np.log(np.maximum(1.0 - cdf_minus, PROBABILITY_FLOOR))
    log_cdf_delta = np.log(np.maximum(cdf_plus - cdf_minus, PROBABILITY_FLOOR))
    return np.where(
        x_arr < -EDGE_THRESHOLD,
        log_cdf_plus,
        np.where(x_arr > EDGE_THRESHOLD, log_one_minus_cdf_minus, log_cdf_delta),
    )
