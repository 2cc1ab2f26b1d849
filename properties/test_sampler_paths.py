"""Paths of the loss-second-moment sampler [S26] that the catalogue's cases do not take.

- `update_with_local_losses` under an initialised process group: `properties/test_distributed.py` runs it in
  two spawned processes, but code reached only in child processes is invisible to a mutation tester's
  per-test coverage; a one-rank gloo group in this process takes the same all-gather path.
- `loss_second_moment_probs` is float64 whatever the history's dtype: a float32 history gives the float64
  probabilities of its values.
Both found by mutation testing (docs/testing.md).
"""

from __future__ import annotations

import datetime
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
from hypothesis import given, settings
from hypothesis import strategies as st

import impl
import reference.timesteps as ref_timesteps
from impl.diffusion import timesteps as impl_timesteps
from properties import strategies as sp
from properties.marshal import impl_diffusion
from testing.assertions import assert_close
from testing.tolerances import ReferenceOp, impl_vs_reference


@st.composite
def _batches(draw: st.DrawFn) -> tuple[int, int, list[tuple[list[int], list[float]]]]:
    """(T, K, rounds of (t, loss) pairs); enough rounds that some histories fill and wrap."""
    steps = draw(st.integers(1, 6))
    history = draw(st.integers(1, 4))
    pair = st.tuples(st.integers(0, steps - 1), st.floats(0.0, 50.0, allow_nan=False, width=32))
    rounds = draw(st.lists(st.lists(pair, min_size=1, max_size=8), min_size=1, max_size=4))
    return steps, history, [([t for t, _ in r], [loss for _, loss in r]) for r in rounds]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sampler(steps: int, history: int) -> impl.LossSecondMomentResampler:
    spec = sp.ProcessSpec("cosine", steps, None, "EPSILON", "FIXED_SMALL", "MSE", False)
    return impl.LossSecondMomentResampler(impl_diffusion(spec), history_per_term=history)


@pytest.mark.skipif(not dist.is_available(), reason="torch built without torch.distributed")
@given(case=_batches())
@settings(max_examples=15)
def test_one_rank_group_update_equals_the_reference_history(
    case: tuple[int, int, list[tuple[list[int], list[float]]]],
) -> None:
    """Under a one-rank gloo group, the gathered update is the reference update of this rank's pairs."""
    steps, history_len, rounds = case
    sampler = _sampler(steps, history_len)
    assert not dist.is_initialized()
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{_free_port()}",
        rank=0,
        world_size=1,
        timeout=datetime.timedelta(seconds=30),  # bounded waits, as in test_distributed.py
    )
    try:
        for t, losses in rounds:
            sampler.update_with_local_losses(torch.tensor(t), torch.tensor(losses, dtype=torch.float64))
    finally:
        dist.destroy_process_group()
    history = np.zeros((steps, history_len))
    counts = np.zeros(steps, dtype=np.int64)
    for t, losses in rounds:
        history, counts = ref_timesteps.update_loss_history(
            history, counts, np.asarray(t), np.asarray(losses)
        )
    assert np.array_equal(sampler._loss_history.numpy(), history)
    assert np.array_equal(sampler._loss_counts.numpy(), counts)


@given(
    steps=st.integers(1, 8),
    history_len=st.integers(1, 4),
    seed=sp.SEEDS,
    full=st.booleans(),
)
@settings(max_examples=25)
def test_probabilities_are_float64_for_a_float32_history(
    steps: int, history_len: int, seed: int, full: bool
) -> None:
    """A float32 history gives float64 probabilities equal to the reference's on the same (float32) values."""
    rng = np.random.default_rng(seed)
    # Losses spread over decades, so that float32 squaring would lose digits float64 keeps.
    values = (10.0 ** rng.uniform(-3.0, 3.0, size=(steps, history_len))).astype(np.float32)
    counts = np.full(steps, history_len if full else max(history_len - 1, 0), dtype=np.int64)
    p = impl_timesteps.loss_second_moment_probs(torch.from_numpy(values), torch.from_numpy(counts))
    assert p.dtype == torch.float64
    expected = ref_timesteps.loss_second_moment_probs(values.astype(np.float64), counts)
    assert_close(p, expected, tol=impl_vs_reference("float64", ReferenceOp.TIMESTEP_PROBS), label="probs")
