"""Comparison of impl outputs with reference outputs under an error budget, with readable failures.

A comparison passes when, elementwise, ``|actual − expected| <= atol + rtol·S`` where S is the magnitude
the rounding errors scale with: ``max(|expected|, sensitivity)``.  The sensitivity (see
`reference_sensitivity`) is the condition-weighted size of the terms of the formula, so cancellation
(e.g. √(1/ᾱ)·x − √(1/ᾱ − 1)·ε at t = T − 1, both terms ~1e4) is budgeted honestly instead of hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from testing.assertions import assert_close, describe_inputs
from testing.tolerances import Tolerance

FloatArray = NDArray[np.float64]
EPS32 = float(np.finfo(np.float32).eps)

Perturb = Callable[[FloatArray, str], FloatArray]  # (array, name of the input or table) -> array


def identity(array: FloatArray, name: str) -> FloatArray:
    """The unperturbed input."""
    return array


class _Recorder:
    """An identity perturbation that records which named inputs and tables a reference call reads."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, array: FloatArray, name: str) -> FloatArray:
        if name not in self.names:
            self.names.append(name)
        return array


def group_perturbation(group: str, seed: int, random_signs: bool, size: float = EPS32) -> Perturb:
    """Multiply the elements of one named input/table by (1 ± size), leave the rest exact."""
    rng = np.random.default_rng(seed)

    def perturb(array: FloatArray, name: str) -> FloatArray:
        if name != group:
            return array
        values = np.asarray(array, dtype=np.float64)
        signs = (
            rng.choice(np.array([-1.0, 1.0]), size=values.shape) if random_signs else np.ones(values.shape)
        )
        return values * (1.0 + size * signs)

    return perturb


def reference_sensitivity(
    call: Callable[[Perturb], Mapping[str, FloatArray]], expected: Mapping[str, FloatArray], seed: int
) -> dict[str, FloatArray]:
    """Per output, Σ over named inputs/tables v of |f(v·(1 ± eps32)) − f(v)| / eps32.

    One input or table is perturbed at a time (relative eps32 per element, once with equal and once with
    random signs, keeping the larger change), so terms of different inputs cannot cancel each other:
    this estimates Σ_i |∂f/∂v_i|·|v_i|, the magnitude by which relative rounding errors of the inputs
    and tables (float32: each table rounded once) are amplified.  Where a perturbation makes the
    output non-finite while the unperturbed output is finite, the element is ill-posed at that precision
    and its sensitivity is inf.
    """
    recorder = _Recorder()
    call(recorder)
    result = {key: np.zeros(np.shape(value)) for key, value in expected.items()}
    for index, group in enumerate(recorder.names):
        largest = {key: np.zeros(np.shape(value)) for key, value in expected.items()}
        for random_signs in (False, True):
            with np.errstate(all="ignore"):  # a perturbation may push a sqrt argument below 0
                perturbed = call(group_perturbation(group, seed * 7919 + index, random_signs))
            for key, value in expected.items():
                moved = np.asarray(perturbed[key], dtype=np.float64)
                base = np.asarray(value, dtype=np.float64)
                with np.errstate(invalid="ignore", over="ignore"):
                    delta = np.abs(moved - base) / EPS32
                delta = np.where(np.isfinite(base) & ~np.isfinite(moved), np.inf, delta)
                delta = np.where(np.isfinite(base) | np.isfinite(moved), delta, 0.0)
                largest[key] = np.maximum(largest[key], np.nan_to_num(delta, nan=np.inf))
        for key in result:
            result[key] = result[key] + largest[key]
    return result


def assert_outputs_close(
    actual: Mapping[str, FloatArray],
    expected: Mapping[str, FloatArray],
    tol: Tolerance,
    *,
    sensitivity: Mapping[str, FloatArray] | None = None,
    inputs: Any = None,
    label: str = "",
) -> None:
    """Assert every output within `tol` (scaled as described in the module docstring).

    The outputs must have the same names and each impl output the reference's shape (or one that
    broadcasts to it); `testing.assertions.assert_close` then compares each, so a failure names the
    output, the worst element, both values, the allowance, the tolerance's reason and the inputs.
    """
    __tracebackhide__ = True
    if set(actual) != set(expected):
        raise AssertionError(
            f"{label}: output keys differ: impl {sorted(actual)} vs reference {sorted(expected)}"
        )
    for key in expected:
        a = np.asarray(actual[key], dtype=np.float64)
        e = np.asarray(expected[key], dtype=np.float64)
        if a.shape != e.shape:
            try:
                a = np.broadcast_to(a, e.shape)
            except ValueError:
                raise AssertionError(
                    f"{label}: output {key!r} has shape {a.shape}, reference {e.shape}; "
                    f"inputs: {describe_inputs(inputs)}"
                ) from None
        scale = np.abs(e)
        if sensitivity is not None and key in sensitivity:
            scale = np.maximum(scale, np.broadcast_to(sensitivity[key], e.shape))
        assert_close(
            a,
            e,
            tol=tol,
            scale=scale,
            inputs=inputs,
            label=f"{label}: output {key!r} (impl vs reference)",
            equal_nan=True,
        )
