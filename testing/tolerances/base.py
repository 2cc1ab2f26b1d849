"""The tolerance record and the machine epsilons the error budgets are written in."""

from __future__ import annotations

from dataclasses import dataclass

# The machine epsilons (spacing of floats at 1.0) as the budgets quote them, to three significant digits,
# rounded down: np.finfo(np.float64).eps = 2.220446e-16, np.finfo(np.float32).eps = 1.1920929e-7.  The
# truncation (0.02% and 0.18%) makes each budget marginally tighter, never looser, and keeps every value
# bit-identical to the one its budget was first written with (tests/toolkit checks both facts).
FLOAT64_EPS = 2.22e-16
FLOAT32_EPS = 1.19e-7


@dataclass(frozen=True)
class Tolerance:
    """``|actual − expected| <= atol + rtol·scale`` elementwise; scale = |expected| unless a suite says
    otherwise (the catalogue's sensitivity, a tensor's max |g|: the reason names the unit)."""

    rtol: float
    atol: float
    reason: str
