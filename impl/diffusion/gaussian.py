"""Gaussian likelihood terms on tensors: KL [S15], approximate CDF [S16], discretized likelihood [S17]."""

from __future__ import annotations

import math

import torch

__all__ = ["approx_standard_normal_cdf", "discretized_gaussian_log_likelihood", "mean_flat", "normal_kl"]

_BIN_HALF_WIDTH = 1.0 / 255.0
_LOG_FLOOR = 1e-12


def mean_flat(tensor: torch.Tensor) -> torch.Tensor:
    """The mean over every axis but the batch axis: (B, ...) -> (B,)."""
    return tensor.mean(dim=tuple(range(1, tensor.ndim))) if tensor.ndim > 1 else tensor


def normal_kl(
    mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor
) -> torch.Tensor:
    """KL(N(m1, e^{lv1}) ‖ N(m2, e^{lv2})) = ½(−1 + lv2 − lv1 + e^{lv1−lv2} + (m1 − m2)² e^{−lv2}) [S15]."""
    return 0.5 * (
        -1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Φ(x) ≈ ½(1 + tanh(√(2/π)(x + 0.044715 x³))) [S16]."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, *, means: torch.Tensor, log_scales: torch.Tensor
) -> torch.Tensor:
    """log P(bin of x) under N(means, e^{2·log_scales}) for 8-bit data in [−1, 1], edges open [S17]."""
    inv_sigma = torch.exp(-log_scales)
    centred = x - means
    cdf_upper = approx_standard_normal_cdf((centred + _BIN_HALF_WIDTH) * inv_sigma)
    cdf_lower = approx_standard_normal_cdf((centred - _BIN_HALF_WIDTH) * inv_sigma)
    log_below_upper = torch.log(cdf_upper.clamp(min=_LOG_FLOOR))
    log_above_lower = torch.log((1.0 - cdf_lower).clamp(min=_LOG_FLOOR))
    log_in_bin = torch.log((cdf_upper - cdf_lower).clamp(min=_LOG_FLOOR))
    return torch.where(x < -0.999, log_below_upper, torch.where(x > 0.999, log_above_lower, log_in_bin))
