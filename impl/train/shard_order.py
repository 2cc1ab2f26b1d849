"""The order in which tar shards are read: a pure function of (seed, epoch, rank, world_size, streams).

Epoch ``e``: the shards are permuted by ``epoch_permutation(seed, e, S)``; rank ``r`` of ``W`` takes every
``W``-th shard of that order from position ``r`` (so the ranks' shares are disjoint and together all ``S``
shards); the rank's share is dealt in turn to its ``K`` streams (``K = max(1, num_workers)``: one stream per
DataLoader worker).  A stream reads its shards one after another, samples in stored order, and runs on into
the next epoch's shards; it cuts its samples into local batches of ``b``.  The rank's batch ``j`` is batch
``j // K`` of stream ``j % K``.

So the position of every stream after ``s`` steps is known, and a resumed run restarts each stream inside
the shard it was reading, skipping (without decoding) the samples already used: the remaining order is the
same as without the interruption, provided seed, batch size, world size and ``num_workers`` are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from impl.runtime.seeding import epoch_permutation

__all__ = ["StreamStart", "check_shard_split", "stream_batches_before", "stream_shards", "stream_start"]


def check_shard_split(num_shards: int, world_size: int, streams: int) -> None:
    """Every stream of every rank needs at least one shard in every epoch."""
    if num_shards < world_size * streams:
        raise ValueError(
            f"{num_shards} tar shards cannot feed {world_size} rank(s) x {streams} worker stream(s): every "
            f"worker needs a shard per epoch; use fewer --num_workers, or more shards (smaller --shard_size)"
        )


def stream_shards(
    seed: int, epoch: int, num_shards: int, rank: int, world_size: int, stream: int, streams: int
) -> list[int]:
    """The shard numbers stream ``stream`` of rank ``rank`` reads in epoch ``epoch``, in reading order."""
    order = epoch_permutation(seed, epoch, num_shards).tolist()
    share: list[int] = order[rank::world_size]
    return share[stream::streams]


def stream_batches_before(step: int, stream: int, streams: int) -> int:
    """How many of the rank's first ``step`` batches came from stream ``stream`` (batch j from j mod K)."""
    return max(0, (step - stream + streams - 1) // streams)


@dataclass(frozen=True)
class StreamStart:
    """Where a stream resumes: epoch, position in that epoch's shard list, samples to skip in that shard."""

    epoch: int
    position: int
    skip: int


def stream_start(
    counts: Sequence[int], seed: int, rank: int, world_size: int, stream: int, streams: int, consumed: int
) -> StreamStart:
    """The reading position of a stream that has already delivered ``consumed`` samples."""
    epoch, left = 0, consumed
    while True:
        shards = stream_shards(seed, epoch, len(counts), rank, world_size, stream, streams)
        total = sum(counts[k] for k in shards)
        if left < total:
            for position, k in enumerate(shards):
                if left < counts[k]:
                    return StreamStart(epoch, position, left)
                left -= counts[k]
        left -= total
        epoch += 1


def stream_sequence(
    counts: Sequence[int],
    seed: int,
    rank: int,
    world_size: int,
    stream: int,
    streams: int,
    start: StreamStart,
) -> Iterator[tuple[int, int]]:
    """``(shard, samples to skip)`` in reading order from ``start`` on, forever."""
    epoch, position, skip = start.epoch, start.position, start.skip
    while True:
        shards = stream_shards(seed, epoch, len(counts), rank, world_size, stream, streams)
        for k in shards[position:]:
            yield k, skip
            skip = 0
        epoch, position = epoch + 1, 0
