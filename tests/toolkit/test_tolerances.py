"""The tolerance table: typed keys, every entry with a reason, epsilons that only tighten the budgets."""

from __future__ import annotations

import enum

import numpy as np
import pytest

from testing import tolerances as tol_table
from testing.tolerances import (
    FLOAT32_EPS,
    FLOAT64_EPS,
    IMPL_VS_REFERENCE,
    SUITE_BUDGETS,
    Oracle,
    ReferenceOp,
    impl_vs_reference,
    tolerance,
)

SUITE_ENUMS = (
    tol_table.Oracle,
    tol_table.UNet,
    tol_table.Sampling,
    tol_table.Train,
    tol_table.CompileScope,
    tol_table.Evaluate,
    tol_table.Cli,
)


@pytest.mark.parametrize(("named", "dtype"), [(FLOAT64_EPS, np.float64), (FLOAT32_EPS, np.float32)])
def test_named_epsilons_are_the_machine_epsilons_rounded_down(named: float, dtype: type) -> None:
    """Three significant digits, never above the true epsilon (a budget written in them is no looser)."""
    eps = float(np.finfo(dtype).eps)
    assert named <= eps
    assert named > eps * (1 - 2e-3)


def test_every_member_of_every_key_enum_has_exactly_one_entry() -> None:
    for keys in SUITE_ENUMS:
        assert issubclass(keys, enum.Enum)
        missing = [key for key in keys if key not in SUITE_BUDGETS]
        assert not missing, f"{keys.__name__} members without a tolerance: {missing}"
    assert len(SUITE_BUDGETS) == sum(len(keys) for keys in SUITE_ENUMS)
    used_ops = {op for _, op in IMPL_VS_REFERENCE}
    assert used_ops == set(ReferenceOp), f"ops without any tolerance: {set(ReferenceOp) - used_ops}"
    assert {precision for precision, _ in IMPL_VS_REFERENCE} == {"float64", "float32"}


def test_every_entry_is_non_negative_and_gives_its_reason() -> None:
    for key, tol in [*SUITE_BUDGETS.items(), *IMPL_VS_REFERENCE.items()]:
        assert tol.rtol >= 0.0 and tol.atol >= 0.0, key
        assert len(tol.reason) > 40, f"{key}: a tolerance needs its error budget as the reason"


def test_lookups_fail_loudly_on_a_missing_key() -> None:
    assert tolerance(Oracle.REASSOCIATED_FORMULA) is SUITE_BUDGETS[Oracle.REASSOCIATED_FORMULA]
    assert (
        impl_vs_reference("float32", ReferenceOp.BOUND) is IMPL_VS_REFERENCE[("float32", ReferenceOp.BOUND)]
    )
    with pytest.raises(KeyError, match="no impl-vs-reference tolerance"):
        impl_vs_reference("float32", ReferenceOp.SCHEDULE)  # the schedules are float64 only
    with pytest.raises(KeyError, match="no impl-vs-reference tolerance"):
        impl_vs_reference("float16", ReferenceOp.TABLES)
    with pytest.raises(KeyError, match="no tolerance for"):
        tolerance(ReferenceOp.TABLES)  # type: ignore[arg-type]  # impl-vs-reference keys are kept apart
