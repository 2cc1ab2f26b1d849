"""Classifier-free guidance ([S50]–[S52]), float64: the guided network output and the training-time label
dropout that teaches one network both the conditional and the unconditional (null-label) prediction.

The guided output is a combination of two network outputs at the same ``(x_t, t)``: the conditional one
(labels ``y``) and the unconditional one (the null label ``∅ = num_classes``).  All randomness (the
dropout's uniforms) is passed in.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from reference._validate import FloatArray, IntArray, as_float64, check_same_shape


def _check_scale(guidance_scale: float) -> float:
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, int | float):
        raise ValueError(f"guidance_scale: expected a finite number, got {guidance_scale!r}")
    if not math.isfinite(guidance_scale):
        raise ValueError(f"guidance_scale: expected a finite number, got {guidance_scale!r}")
    return float(guidance_scale)


def guided_eps(eps_cond: ArrayLike, eps_uncond: ArrayLike, guidance_scale: float) -> FloatArray:
    """ε̂_w = ε̂(x, ∅) + w·(ε̂(x, y) − ε̂(x, ∅)) [S50].

    w = 1 is ε̂(x, y), w = 0 is ε̂(x, ∅); Ho & Salimans' (1 + w′)ε̂(x, y) − w′ε̂(x, ∅) is w = 1 + w′.
    """
    w = _check_scale(guidance_scale)
    cond = as_float64(eps_cond, "eps_cond")
    uncond = as_float64(eps_uncond, "eps_uncond")
    check_same_shape(uncond, "eps_uncond", cond, "eps_cond")
    guided: FloatArray = uncond + w * (cond - uncond)
    return guided


def guided_model_output(
    cond_output: ArrayLike, uncond_output: ArrayLike, guidance_scale: float, channels: int
) -> FloatArray:
    """out_w = [mean_w, var(x, y)]: the first C channels by [S50], the variance part conditional [S52].

    ``cond_output`` and ``uncond_output`` are network outputs of shape ``(B, C, …)`` or, with a learned
    Σ, ``(B, 2C, …)`` (mean part first, variance part second); ``channels`` is C.  The mean part is
    combined by [S50]; the variance part, when there is one, is the conditional branch's.
    """
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels: expected an integer >= 1, got {channels!r}")
    cond = as_float64(cond_output, "cond_output")
    uncond = as_float64(uncond_output, "uncond_output")
    check_same_shape(uncond, "uncond_output", cond, "cond_output")
    if cond.ndim < 2 or cond.shape[1] not in (channels, 2 * channels):
        raise ValueError(
            f"cond_output: expected {channels} or {2 * channels} channels on axis 1 (C = channels, twice "
            f"that with a learned variance), got shape {cond.shape}"
        )
    mean = guided_eps(cond[:, :channels], uncond[:, :channels], guidance_scale)
    out: FloatArray = np.concatenate([mean, cond[:, channels:]], axis=1)
    return out


def drop_labels(labels: ArrayLike, uniforms: ArrayLike, drop_prob: float, null_label: int) -> IntArray:
    """y′_i = ∅ if u_i < p else y_i, u_i ~ U[0, 1) [S51]: each label becomes the null label with prob. p.

    p = 0 keeps every label; ``null_label`` (∅) is ``num_classes``, the extra row of the label embedding.
    """
    if isinstance(drop_prob, bool) or not isinstance(drop_prob, int | float):
        raise ValueError(f"drop_prob: expected a number in [0, 1), got {drop_prob!r}")
    if not 0.0 <= drop_prob < 1.0:
        raise ValueError(f"drop_prob: expected a number in [0, 1), got {drop_prob!r}")
    if isinstance(null_label, bool) or not isinstance(null_label, int) or null_label < 1:
        raise ValueError(f"null_label: expected an integer >= 1 (num_classes), got {null_label!r}")
    y = np.asarray(labels)
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise ValueError(f"labels: expected a 1-D integer array, got dtype {y.dtype}, shape {y.shape}")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= null_label):
        raise ValueError(f"labels: expected class indices in [0, {null_label}), got {y.min()}..{y.max()}")
    u = as_float64(uniforms, "uniforms")
    if u.shape != y.shape:
        raise ValueError(f"uniforms: expected shape {y.shape} (the shape of labels), got {u.shape}")
    dropped: IntArray = np.where(u < drop_prob, null_label, y).astype(np.int64)
    return dropped
