"""Classifier guidance ([S48], [S49]), float64: the guidance gradient and the linear-softmax closed form.

The oracle holds the gradient to a classifier whose gradient is analytic, a linear-softmax classifier on
the flattened image, ``f(x) = W·vec(x) + b``; the impl's autograd gradient through any classifier is held
to it (and, through the real noisy-image classifier, to a finite difference: tests/sampling).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import FloatArray, IntArray, as_float64


def guidance_gradient(grad_log_prob: ArrayLike, scale: float) -> FloatArray:
    """g = s·∇_x log p(y|x_t), the classifier-guidance gradient at scale s ≥ 0 [S48]."""
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale: expected a finite number >= 0, got {scale!r}")
    return float(scale) * as_float64(grad_log_prob, "grad_log_prob")


def _check_linear(
    weight: ArrayLike, bias: ArrayLike, x: ArrayLike, y: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
    w = as_float64(weight, "weight")
    b = as_float64(bias, "bias")
    xs = as_float64(x, "x")
    labels = np.asarray(y)
    if w.ndim != 2:
        raise ValueError(f"weight: expected shape (K, D), got {w.shape}")
    if b.shape != (w.shape[0],):
        raise ValueError(f"bias: expected shape ({w.shape[0]},), got {b.shape}")
    if xs.ndim < 2 or math.prod(xs.shape[1:]) != w.shape[1]:
        raise ValueError(f"x: expected shape (B, ...) with {w.shape[1]} values per sample, got {xs.shape}")
    if labels.shape != (xs.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"y: expected integer labels of shape ({xs.shape[0]},), got {labels.shape}")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= w.shape[0]):
        raise ValueError(f"y: labels must lie in [0, {w.shape[0] - 1}], got {labels.tolist()}")
    return w, b, xs, labels.astype(np.int64)


def linear_softmax_probs(weight: ArrayLike, bias: ArrayLike, x: ArrayLike) -> FloatArray:
    """p = softmax(W·vec(x) + b), one row of K class probabilities per sample [S49]."""
    w, b = as_float64(weight, "weight"), as_float64(bias, "bias")
    xs = as_float64(x, "x")
    logits = xs.reshape(xs.shape[0], -1) @ w.T + b
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    probs: FloatArray = e / e.sum(axis=1, keepdims=True)
    return probs


def linear_log_prob_grad(weight: ArrayLike, bias: ArrayLike, x: ArrayLike, y: ArrayLike) -> FloatArray:
    """∇_x log p(y|x) = W_y − Σ_k p_k W_k for f(x) = W·vec(x) + b, reshaped like x [S49]."""
    w, b, xs, labels = _check_linear(weight, bias, x, y)
    probs = linear_softmax_probs(w, b, xs)
    grad = w[labels] - probs @ w
    return grad.reshape(xs.shape)


def linear_classifier_guidance(
    weight: ArrayLike, bias: ArrayLike, x: ArrayLike, y: ArrayLike, scale: float
) -> FloatArray:
    """g = s·(W_y − Σ_k p_k W_k): the guidance gradient [S48] of a linear-softmax classifier [S49]."""
    return guidance_gradient(linear_log_prob_grad(weight, bias, x, y), scale)
