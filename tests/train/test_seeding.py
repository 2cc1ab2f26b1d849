"""Data order and per-step seeds are pure functions of (seed, step)."""

from __future__ import annotations

import pytest
import torch

from impl.runtime.seeding import derive_seed, epoch_permutation, global_batch_indices, rank_slice


def test_each_epoch_visits_every_item_once() -> None:
    n, batch = 10, 4
    draws = [global_batch_indices(seed=3, step=s, num_items=n, global_batch=batch) for s in range(5)]
    visited = torch.cat(draws)
    # 20 draws = two whole epochs
    assert sorted(visited[:n].tolist()) == list(range(n))
    assert sorted(visited[n:].tolist()) == list(range(n))


def test_batches_depend_only_on_seed_and_step() -> None:
    a = global_batch_indices(seed=1, step=7, num_items=13, global_batch=5)
    b = global_batch_indices(seed=1, step=7, num_items=13, global_batch=5)
    c = global_batch_indices(seed=2, step=7, num_items=13, global_batch=5)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_batch_larger_than_data_set_spans_epochs() -> None:
    idx = global_batch_indices(seed=0, step=0, num_items=3, global_batch=7)
    expected = torch.cat([epoch_permutation(0, 0, 3), epoch_permutation(0, 1, 3), epoch_permutation(0, 2, 3)])
    assert torch.equal(idx, expected[:7])


def test_rank_slices_tile_the_global_batch() -> None:
    parts = [rank_slice(12, r, 3) for r in range(3)]
    assert [(p.start, p.stop) for p in parts] == [(0, 4), (4, 8), (8, 12)]
    with pytest.raises(ValueError, match="divisible"):
        rank_slice(10, 0, 3)


def test_derive_seed_is_order_sensitive_and_rejects_negatives() -> None:
    assert derive_seed(1, 2) != derive_seed(2, 1)
    assert 0 <= derive_seed(5, 6, 7) < 2**63
    with pytest.raises(ValueError, match="non-negative"):
        derive_seed(-1)
