"""Shared input checks and array plumbing for the oracle, so the math functions stay short.

Every check raises a ``ValueError`` whose message starts with the argument's name and says what is allowed.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

MEAN_TYPES: tuple[str, ...] = ("EPSILON", "START_X", "PREVIOUS_X", "VELOCITY")
VAR_TYPES: tuple[str, ...] = ("LEARNED", "FIXED_SMALL", "FIXED_LARGE", "LEARNED_RANGE")
LEARNED_VAR_TYPES: tuple[str, ...] = ("LEARNED", "LEARNED_RANGE")
LOSS_TYPES: tuple[str, ...] = ("MSE", "RESCALED_MSE", "KL", "RESCALED_KL")
LOSS_WEIGHTINGS: tuple[str, ...] = ("none", "min_snr")


def as_float64(x: ArrayLike, name: str) -> FloatArray:
    """Return ``x`` as a float64 array (a copy when a cast is needed); reject non-numeric input."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def check_choice(value: str, name: str, allowed: Iterable[str]) -> str:
    """Check that ``value`` is one of ``allowed`` (enumerations are member-name strings)."""
    options = tuple(allowed)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}: unknown value {value!r}; allowed: {', '.join(options)}")
    return value


def check_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Check that ``value`` is an integer (not a bool) with ``value >= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {int(value)}")
    return int(value)


def check_timesteps(t: ArrayLike, num_timesteps: int, name: str = "t") -> IntArray:
    """Check that ``t`` is a 1-D integer array with ``0 <= t < num_timesteps``; return it as int64."""
    arr = np.asarray(t)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected an integer array of timesteps, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected shape (B,), got shape {arr.shape}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= num_timesteps):
        raise ValueError(
            f"{name}: timesteps must lie in [0, {num_timesteps - 1}], got min {int(arr.min())}, "
            f"max {int(arr.max())}"
        )
    return arr.astype(np.int64, copy=False)


def check_batch(x: FloatArray, name: str, t: IntArray) -> None:
    """Check that ``x`` has a leading batch axis matching ``t``'s length."""
    if x.ndim < 1 or x.shape[0] != t.shape[0]:
        raise ValueError(
            f"{name}: expected a leading batch axis of size {t.shape[0]} (len(t)), got shape {x.shape}"
        )


def check_same_shape(x: FloatArray, name: str, reference: FloatArray, reference_name: str) -> None:
    """Check that ``x`` has exactly the shape of ``reference``."""
    if x.shape != reference.shape:
        raise ValueError(
            f"{name}: expected shape {reference.shape} (the shape of {reference_name}), got {x.shape}"
        )


def gather(table: FloatArray, t: IntArray, ndim: int) -> FloatArray:
    """``table[t]`` reshaped to ``(B, 1, ..., 1)`` with ``ndim`` axes, ready to broadcast against data."""
    values: FloatArray = table[t]
    return values.reshape(values.shape + (1,) * (ndim - 1))


def mean_over_non_batch(x: FloatArray) -> FloatArray:
    """Mean over every axis but the first (improved-diffusion's ``mean_flat``)."""
    means: FloatArray = x.reshape(x.shape[0], -1).mean(axis=1)
    return means
