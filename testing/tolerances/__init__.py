"""The one table of numerical tolerances of the test suites, each entry with the reason it is what it is.

Two kinds of key, kept apart:

- impl against the float64 reference (the property catalogue): ``impl_vs_reference(precision, op)``
  with ``op`` a `ReferenceOp` and ``precision`` ``"float64"`` or ``"float32"``
  (`testing.tolerances.impl_vs_reference`);
- every suite's own budget, one enum member each: `Oracle` (the reference against independent
  mathematics), `UNet`, `Sampling`, `Train`, `CompileScope`, `Evaluate`, `Cli`: ``tolerance(Oracle.X)``
  (`testing.tolerances.oracle`, `testing.tolerances.suites`).

The derivations are written in the named machine epsilons `FLOAT64_EPS` and `FLOAT32_EPS`.  Never widen
an entry to make a test pass without rewriting its reason as an error budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from testing.tolerances.base import FLOAT32_EPS, FLOAT64_EPS, Tolerance
from testing.tolerances.impl_vs_reference import IMPL_VS_REFERENCE, Precision, ReferenceOp
from testing.tolerances.oracle import ORACLE, Oracle
from testing.tolerances.suites import (
    CLI,
    COMPILE_SCOPE,
    EVALUATE,
    SAMPLING,
    TRAIN,
    UNET,
    Cli,
    CompileScope,
    Evaluate,
    Sampling,
    Train,
    UNet,
)

SuiteKey = Oracle | UNet | Sampling | Train | CompileScope | Evaluate | Cli


def _merged(*tables: Mapping[Any, Tolerance]) -> dict[SuiteKey, Tolerance]:
    merged: dict[SuiteKey, Tolerance] = {}
    for table in tables:
        merged.update(table)
    return merged


SUITE_BUDGETS = _merged(ORACLE, UNET, SAMPLING, TRAIN, COMPILE_SCOPE, EVALUATE, CLI)

__all__ = [
    "FLOAT32_EPS",
    "FLOAT64_EPS",
    "IMPL_VS_REFERENCE",
    "SUITE_BUDGETS",
    "Cli",
    "CompileScope",
    "Evaluate",
    "Oracle",
    "Precision",
    "ReferenceOp",
    "Sampling",
    "SuiteKey",
    "Tolerance",
    "Train",
    "UNet",
    "impl_vs_reference",
    "tolerance",
]


def tolerance(key: SuiteKey) -> Tolerance:
    """A suite's own budget; a key without an entry is a test-suite bug, so fail loudly."""
    try:
        return SUITE_BUDGETS[key]
    except KeyError:
        raise KeyError(f"no tolerance for {key!r}; add it to testing/tolerances") from None


def impl_vs_reference(precision: str, op: ReferenceOp) -> Tolerance:
    """The impl-vs-reference budget of `op` computed in `precision` ("float64" or "float32")."""
    for (entry_precision, entry_op), tol in IMPL_VS_REFERENCE.items():
        if entry_precision == precision and entry_op is op:
            return tol
    raise KeyError(
        f"no impl-vs-reference tolerance for precision={precision!r} op={op!r}; add it to "
        "testing/tolerances/impl_vs_reference.py"
    )
