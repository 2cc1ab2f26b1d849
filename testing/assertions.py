"""The one array assertion of the test suites: elementwise closeness under a tolerance of the table.

``assert_close(actual, expected, tol=...)`` passes when, elementwise,
``|actual − expected| <= tol.atol + tol.rtol·scale`` with ``scale = |expected|`` unless the caller passes
the magnitude its budget is stated in (the property catalogue passes max(|expected|, sensitivity)).  Equal
values always pass (so do equal infinities); NaN matches NaN only with ``equal_nan=True``.  A failure
names the worst element (largest error over allowance), both values, the allowance, the tolerance and
its reason, and the inputs; the helper's own frame is hidden from pytest's traceback.

NumPy arrays, Python numbers and sequences, and torch tensors (by duck typing: anything with
``detach``) are compared as float64; two tensors must also have the same dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from testing.tolerances.base import Tolerance

FloatArray = NDArray[np.float64]
_INPUTS_CHARS = 1500


def as_float64(value: Any) -> FloatArray:
    """`value` as a float64 NumPy array (a torch tensor is detached and moved to the CPU first)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def describe_inputs(inputs: Any) -> str:
    """A bounded repr of the inputs a failure came from."""
    text = repr(inputs)
    return text if len(text) < _INPUTS_CHARS else text[:_INPUTS_CHARS] + "…"


def _prefix(label: str) -> str:
    return f"{label}: " if label else ""


def assert_close(
    actual: Any,
    expected: Any,
    *,
    tol: Tolerance,
    scale: Any = None,
    inputs: Any = None,
    label: str = "",
    equal_nan: bool = False,
) -> None:
    """Assert ``|actual − expected| <= tol.atol + tol.rtol·scale`` elementwise (scale = |expected|).

    `expected` (and `scale`) may broadcast to the shape of `actual`, never the other way round.
    """
    __tracebackhide__ = True
    if hasattr(actual, "detach") and hasattr(expected, "detach") and actual.dtype != expected.dtype:
        raise AssertionError(f"{_prefix(label)}dtype {actual.dtype} differs from expected {expected.dtype}")
    a, e = as_float64(actual), as_float64(expected)
    try:
        broadcast = np.broadcast_shapes(a.shape, e.shape)
    except ValueError:
        broadcast = None
    if broadcast != a.shape:
        raise AssertionError(
            f"{_prefix(label)}shape {a.shape} does not match expected {e.shape}; "
            f"inputs: {describe_inputs(inputs)}"
        )
    e = np.broadcast_to(e, a.shape)
    magnitude = np.abs(e) if scale is None else np.broadcast_to(as_float64(scale), a.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        allowed = tol.atol + tol.rtol * magnitude
        error = np.abs(a - e)
    ok = (a == e) | (error <= allowed)
    if equal_nan:
        ok = ok | (np.isnan(a) & np.isnan(e))
    if bool(np.all(ok)):
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ok, 0.0, np.nan_to_num(error / allowed, nan=np.inf, posinf=np.inf))
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.ndim else ()
    where = f" at {tuple(int(i) for i in worst)}" if ratio.ndim else ""
    raise AssertionError(
        f"{_prefix(label)}{int(np.sum(~ok))} of {ok.size} elements out of tolerance; worst{where}:\n"
        f"  actual    = {float(a[worst])!r}\n  expected  = {float(e[worst])!r}\n"
        f"  |error|   = {float(error[worst])!r} > allowed {float(allowed[worst])!r} "
        f"(atol={tol.atol:g}, rtol={tol.rtol:g}, scale={float(magnitude[worst])!r})\n"
        f"  tolerance reason: {tol.reason}\n  inputs: {describe_inputs(inputs)}"
    )
