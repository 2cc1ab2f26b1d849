"""Classifier guidance [S48], [S49]: the linear-softmax gradient against a finite difference of an
independent log-softmax, the scale, and the argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference.classifier_guidance import (
    guidance_gradient,
    linear_classifier_guidance,
    linear_log_prob_grad,
    linear_softmax_probs,
)
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance

STEP = 1e-5  # the central difference's h (the budget's derivation assumes it)


def _log_p(weight: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """log softmax(W·vec(x) + b)_y written out independently of the oracle (max-shifted log-sum-exp)."""
    logits = np.einsum("kd,bd->bk", weight, x.reshape(x.shape[0], -1)) + bias
    top = logits.max(axis=1)
    lse = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    return logits[np.arange(x.shape[0]), y] - lse


@pytest.mark.parametrize("seed", range(6))
def test_linear_gradient_equals_a_central_difference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch, shape, classes = 3, (1, 3, 4) if seed % 2 else (3, 2, 2), 2 + seed
    dim = math.prod(shape)
    weight = rng.uniform(-0.5, 0.5, size=(classes, dim))
    bias = rng.uniform(-1.0, 1.0, size=classes)
    x = rng.standard_normal((batch, *shape))
    y = rng.integers(0, classes, size=batch)
    grad = linear_log_prob_grad(weight, bias, x, y)
    assert grad.shape == x.shape
    for _ in range(4):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v.reshape(batch, -1), axis=1).reshape(-1, 1, 1, 1)
        difference = (_log_p(weight, bias, x + STEP * v, y) - _log_p(weight, bias, x - STEP * v, y)) / (
            2 * STEP
        )
        directional = (grad * v).reshape(batch, -1).sum(axis=1)
        assert_close(directional, difference, tol=tolerance(Oracle.LINEAR_SOFTMAX_GRADIENT_FD))


def test_two_classes_reduce_to_the_logistic_gradient() -> None:
    """K = 2: ∇ log p_0 = (1 − p_0)(W_0 − W_1), p_0 = σ(f_0 − f_1): the same closed form, reassociated."""
    rng = np.random.default_rng(7)
    weight, bias = 0.5 * rng.standard_normal((2, 6)), rng.standard_normal(2)
    x = rng.standard_normal((4, 6))
    y = np.zeros(4, dtype=np.int64)
    margin = x @ (weight[0] - weight[1]) + bias[0] - bias[1]
    p0 = 1.0 / (1.0 + np.exp(-margin))
    expected = (1.0 - p0)[:, None] * (weight[0] - weight[1])
    same_formula = tolerance(Oracle.REASSOCIATED_FORMULA)
    assert_close(linear_log_prob_grad(weight, bias, x, y), expected, tol=same_formula)
    assert_close(linear_softmax_probs(weight, bias, x)[:, 0], p0, tol=same_formula)


def test_scale_multiplies_and_is_checked() -> None:
    rng = np.random.default_rng(8)
    weight, bias, x = rng.standard_normal((3, 4)), rng.standard_normal(3), rng.standard_normal((2, 4))
    y = np.array([0, 2])
    base = linear_log_prob_grad(weight, bias, x, y)
    assert np.array_equal(linear_classifier_guidance(weight, bias, x, y, 2.5), 2.5 * base)
    assert np.array_equal(guidance_gradient(base, 0.0), np.zeros_like(base))
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="scale"):
            guidance_gradient(base, bad)


@pytest.mark.parametrize(
    ("weight_shape", "bias_shape", "x_shape", "y", "name"),
    [
        ((3,), (3,), (2, 1), [0, 1], "weight"),
        ((3, 4), (2,), (2, 4), [0, 1], "bias"),
        ((3, 4), (3,), (2, 5), [0, 1], "x"),
        ((3, 4), (3,), (2, 4), [0], "y"),
        ((3, 4), (3,), (2, 4), [0, 3], "y"),
    ],
)
def test_bad_arguments_name_themselves(
    weight_shape: tuple[int, ...],
    bias_shape: tuple[int, ...],
    x_shape: tuple[int, ...],
    y: list[int],
    name: str,
) -> None:
    with pytest.raises(ValueError, match=f"^{name}:"):
        linear_log_prob_grad(np.ones(weight_shape), np.ones(bias_shape), np.ones(x_shape), np.array(y))
