"""The one table of numerical tolerances used by the test suites, each with the reason it is what it is.

Keys are ``(tier, operation)``.  Tiers:
- ``"oracle"``: the float64 reference against independent mathematics (quadrature, scipy, Monte Carlo).
- ``"float64"``: impl computing in float64 against the reference.  Both evaluate the same formulas in the
  same precision, so only reassociation differs: a few ulps (2.2e-16) times the condition number of the
  formula.
- ``"float32"``: impl computing in float32 against the reference.  float32 has eps = 1.19e-7; tables are
  built in float64 and rounded once, so each op contributes ~eps relative error and a formula of k ops
  stays within a small multiple of k·eps, scaled by the magnitude of its inputs.

Never widen an entry to make a test pass without rewriting its reason as an error budget.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """``|actual - expected| <= atol + rtol * |expected|`` elementwise."""

    rtol: float
    atol: float
    reason: str


TOLERANCES: dict[tuple[str, str], Tolerance] = {
    # ---- section "oracle": reference vs independent mathematics (owned by tests/reference) ----
    # ---- end of section "oracle" ----
    # ---- section "float64" / "float32": impl vs reference (owned by properties/) ----
    # ---- end of section "float64" / "float32" ----
}


def tolerance(tier: str, operation: str) -> Tolerance:
    """Look up a tolerance; a missing key is a test-suite bug, so fail loudly."""
    try:
        return TOLERANCES[(tier, operation)]
    except KeyError:
        raise KeyError(f"no tolerance for tier={tier!r} operation={operation!r}; add it to TOLERANCES") from None
