"""Timestep samplers [S24]–[S26]."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import (
    importance_weights,
    loss_second_moment_probs,
    sample_timesteps,
    uniform_timestep_probs,
    update_loss_history,
)
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance

positive_weights = st.lists(st.floats(min_value=1e-6, max_value=1e3), min_size=1, max_size=100)


@given(positive_weights, st.data())
def test_importance_weighted_expectation_equals_the_uniform_mean(
    raw: list[float], data: st.DataObject
) -> None:
    p = np.array(raw) / np.sum(raw)
    T = p.shape[0]
    losses = np.array(data.draw(st.lists(st.floats(min_value=0.0, max_value=1e3), min_size=T, max_size=T)))
    t = np.arange(T)
    weighted = np.sum(p * importance_weights(p, t) * losses)  # E_{t∼p}[w_t L_t], summed exactly over t
    tol = tolerance(Oracle.IMPORTANCE_IDENTITY)
    assert abs(weighted - losses.mean()) <= tol.rtol * losses.mean()


def test_uniform_probs_and_unit_weights() -> None:
    p = uniform_timestep_probs(8)
    assert np.array_equal(p, np.full(8, 0.125))
    assert np.array_equal(importance_weights(p, np.array([0, 7, 3])), np.ones(3))


@given(positive_weights, st.integers(min_value=1, max_value=2000))
def test_inverse_cdf_with_stratified_uniforms_hits_each_t_in_proportion(raw: list[float], n: int) -> None:
    # With u_i = (i + ½)/n the inverse CDF gives t exactly when u_i falls in [F(t−1), F(t)), an interval of
    # length p_t, which holds n·p_t ± 1 of the evenly spaced points.
    p = np.array(raw) / np.sum(raw)
    u = (np.arange(n) + 0.5) / n
    t = sample_timesteps(p, u)
    assert t.dtype == np.int64
    assert np.all(np.diff(t) >= 0)
    counts = np.bincount(t, minlength=p.shape[0])
    # slack: the normalised cumulative sum is off by ≤ T·eps ≈ 2e-14, which can move at most n·2e-14 ≪ 1e-9·n
    # points across an edge
    assert np.all(np.abs(counts - n * p) <= 1.0 + 1e-9 * n)


def test_sample_timesteps_by_hand() -> None:
    p = np.array([0.5, 0.0, 0.25, 0.25])
    t = sample_timesteps(p, np.array([0.0, 0.49, 0.5, 0.74, 0.75, 0.999999]))
    assert t.tolist() == [0, 0, 2, 2, 3, 3]


def test_update_loss_history_is_a_pure_fifo_window() -> None:
    history = np.zeros((3, 2))
    counts = np.zeros(3, dtype=np.int64)
    h1, c1 = update_loss_history(history, counts, np.array([1, 1, 2]), np.array([1.0, 2.0, 5.0]))
    assert np.array_equal(history, np.zeros((3, 2))) and np.array_equal(
        counts, np.zeros(3)
    )  # inputs untouched
    assert c1.tolist() == [0, 2, 1]
    assert h1[1].tolist() == [1.0, 2.0]
    assert h1[2, 0] == 5.0
    h2, c2 = update_loss_history(h1, c1, np.array([1, 1]), np.array([3.0, 4.0]))
    assert c2.tolist() == [0, 2, 1]
    assert h2[1].tolist() == [3.0, 4.0]  # the oldest dropped first, order kept


def test_loss_second_moment_probs_uniform_until_full_then_by_hand() -> None:
    history = np.array([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]])
    partial = np.array([2, 1, 2])
    assert np.array_equal(loss_second_moment_probs(history, partial), np.full(3, 1 / 3))
    full = np.array([2, 2, 2])
    # √mean(L²): √12.5, 0, √50 → weights 1/3, 0, 2/3 (√50 = 2√12.5); mixed with u = 0.001
    p = loss_second_moment_probs(history, full)
    expected = np.array([1 / 3, 0.0, 2 / 3]) * 0.999 + 0.001 / 3
    tol = tolerance(Oracle.REASSOCIATED_FORMULA)
    assert_close(p, expected, tol=tol)
    assert abs(p.sum() - 1.0) <= tol.rtol


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: importance_weights(np.array([0.5, -0.5, 1.0]), np.array([0])), r"^p: "),
        (
            lambda: importance_weights(np.array([0.5, 0.5]), np.array([2])),
            r"^t: timesteps must lie in \[0, 1\]",
        ),
        (lambda: importance_weights(np.array([1.0, 0.0]), np.array([1])), r"^t: .*probability p_t is 0"),
        (lambda: sample_timesteps(np.array([0.5, 0.5]), np.array([1.0])), r"^uniforms: "),
        (lambda: uniform_timestep_probs(0), r"^T: "),
        (
            lambda: update_loss_history(np.zeros((3, 2)), np.zeros(2, dtype=int), np.array([0]), np.ones(1)),
            r"^counts",
        ),
        (
            lambda: update_loss_history(np.zeros((3, 2)), np.zeros(3, dtype=int), np.array([0]), np.ones(2)),
            r"^losses",
        ),
        (lambda: loss_second_moment_probs(np.zeros(3), np.zeros(3, dtype=int)), r"^history: "),
    ],
)
def test_bad_input_is_rejected(call: object, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        call()  # type: ignore[operator]
