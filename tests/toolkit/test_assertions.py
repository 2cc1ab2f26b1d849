"""The one array assertion: passes within atol + rtol·scale, and a failure says where, by how much, why."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from testing.assertions import assert_close
from testing.tolerances import Tolerance

TOL = Tolerance(rtol=1e-3, atol=1e-6, reason="a budget written for this test")


def test_passes_within_atol_plus_rtol_times_expected() -> None:
    expected = np.array([1.0, -2.0, 0.0])
    assert_close(expected + np.array([1e-3 + 5e-7, -2e-3 - 5e-7, 9e-7]), expected, tol=TOL)
    assert_close(1.0, 1.0 + 1e-3, tol=TOL)  # scalars and Python numbers
    assert_close([np.inf, -np.inf], [np.inf, -np.inf], tol=TOL)  # equal values always match


def test_fails_just_outside_and_reports_the_worst_element() -> None:
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    actual = expected.copy()
    actual[0, 1] += 2.0 * (TOL.atol + TOL.rtol * 2.0)  # twice its allowance
    actual[1, 0] += 1.5 * (TOL.atol + TOL.rtol * 3.0)  # 1.5 times: not the worst
    with pytest.raises(AssertionError) as info:
        assert_close(actual, expected, tol=TOL, inputs={"seed": 7}, label="case")
    message = str(info.value)
    assert message.startswith("case: 2 of 4 elements out of tolerance; worst at (0, 1)")
    assert "expected  = 2.0" in message and f"actual    = {float(actual[0, 1])!r}" in message
    assert "atol=1e-06, rtol=0.001" in message
    assert "tolerance reason: a budget written for this test" in message
    assert "inputs: {'seed': 7}" in message


def test_nan_matches_only_when_asked_and_shapes_only_broadcast_expected() -> None:
    with pytest.raises(AssertionError, match="1 of 1 elements"):
        assert_close(np.nan, np.nan, tol=TOL)
    assert_close(np.nan, np.nan, tol=TOL, equal_nan=True)
    assert_close(np.ones((2, 3)), 1.0, tol=TOL)  # expected broadcasts to actual
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.ones(3), np.ones((2, 3)), tol=TOL)  # actual never broadcasts
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.ones(3), np.ones(2), tol=TOL)


def test_a_given_scale_replaces_expected_as_the_rtol_unit() -> None:
    assert_close(1e-3, 0.0, tol=TOL, scale=1.0)  # 1e-3 <= 1e-6 + 1e-3·1
    with pytest.raises(AssertionError, match=r"scale=0\.5\)"):
        assert_close(1e-3, 0.0, tol=TOL, scale=0.5)


def test_torch_tensors_compare_as_float64_and_must_share_a_dtype() -> None:
    a = torch.tensor([1.0, 2.0], dtype=torch.float32)
    assert_close(a, a.clone() * (1 + 1e-4), tol=TOL)
    assert_close(a, np.array([1.0, 2.0]), tol=TOL)
    with pytest.raises(AssertionError, match="dtype"):
        assert_close(a, a.double(), tol=TOL)


def test_the_helper_frame_is_hidden_from_tracebacks() -> None:
    assert "__tracebackhide__" in assert_close.__code__.co_varnames
