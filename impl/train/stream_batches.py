"""Batch sources that never hold the whole data set: index-addressable readers (``.npy``, a lazy image
folder) and tar shards, decoded ahead of the trainer by DataLoader workers into pinned memory.

``IndexedStreamData`` serves exactly the batches ``InMemoryData`` would (same indices, same uint8 values,
same conversion), so switching between them changes no bit of a run.  ``ShardStreamData`` serves the
stream order of ``impl.train.shard_order``.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from typing import Any, Protocol, Self

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from impl.data.shard_set import ShardSet
from impl.data.shards import iter_shard
from impl.train.batches import copy_without_host_sync, local_batch_indices, to_model_range_on
from impl.train.shard_order import (
    check_shard_split,
    stream_batches_before,
    stream_sequence,
    stream_start,
)

__all__ = ["IndexedReader", "IndexedStreamData", "ShardStreamData"]

PREFETCH_FACTOR = 4
_NO_LABELS = torch.empty(0, dtype=torch.int64)
Item = tuple[torch.Tensor, torch.Tensor]


class IndexedReader(Protocol):
    """``impl.data.npy.NpyImages`` and ``impl.data.lazy_folder.LazyImageFolder`` satisfy it."""

    shape: tuple[int, int, int, int]
    labels: NDArray[np.int64] | None

    def __len__(self) -> int: ...

    def read(self, indices: NDArray[np.int64]) -> NDArray[np.uint8]: ...


def _nchw(images: NDArray[np.uint8]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _worker_error(exc: BaseException) -> ValueError:
    """A DataLoader worker's ValueError re-raised with its own one-line message (which names the file)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return ValueError(last.removeprefix("ValueError: "))


def _ignore_interrupts(worker_id: int) -> None:
    """Ctrl-C reaches the whole process group: the workers leave it to the training process, which stops
    at its next step and saves (``impl.train.signals``); a worker killed by it would lose that step."""
    del worker_id
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _loader(dataset: Any, num_workers: int, device: torch.device, sampler: Any = None) -> Iterator[Item]:
    loader: DataLoader[Item] = DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=PREFETCH_FACTOR if num_workers > 0 else None,
        worker_init_fn=_ignore_interrupts,
    )
    return iter(loader)


class _StepBatches(Dataset[Item]):
    """Item ``s``: the uint8 NCHW batch of step ``s`` for one rank, with its labels."""

    def __init__(self, reader: IndexedReader, plan: tuple[int, int, int, int]) -> None:
        self.reader, self.plan = reader, plan

    def __getitem__(self, step: int) -> Item:
        seed, global_batch, rank, world_size = self.plan
        idx = local_batch_indices(seed, step, len(self.reader), global_batch, rank, world_size).numpy()
        labels = self.reader.labels
        y = _NO_LABELS if labels is None else torch.from_numpy(labels[idx])
        return _nchw(self.reader.read(idx)), y


class _StreamBase:
    def __init__(self, num_workers: int) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative int; got {num_workers!r}")
        self.num_workers = num_workers
        self.plan: tuple[int, int, int, int] = (0, 1, 0, 1)
        self._iter: Iterator[Item] | None = None
        self._next_step = -1

    def bind(self, *, seed: int, global_batch: int, rank: int, world_size: int) -> None:
        self.plan = (seed, global_batch, rank, world_size)
        self.close()

    def to(self, device: torch.device) -> Self:
        """Itself: batches are moved to the device as they are fetched."""
        return self

    def _start(self, step: int, device: torch.device) -> Iterator[Item]:
        raise NotImplementedError

    def fetch(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch of ``step``: the next prefetched one, or a fresh reader started at ``step``."""
        if self._iter is None or step != self._next_step:
            self.close()
            self._iter = self._start(step, device)
        try:
            x, y = next(self._iter)
        except ValueError as exc:
            self.close()
            raise _worker_error(exc) from None
        self._next_step = step + 1
        x = to_model_range_on(copy_without_host_sync(x, device))
        labels = copy_without_host_sync(y, device) if self.has_labels else None
        return x, labels

    @property
    def has_labels(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the prefetching workers (a later ``fetch`` starts new ones)."""
        self._iter = None
        self._next_step = -1


class IndexedStreamData(_StreamBase):
    """Batches read by index from ``reader``; ``num_workers`` DataLoader workers prefetch the next steps."""

    def __init__(self, reader: IndexedReader, num_workers: int = 0) -> None:
        super().__init__(num_workers)
        self.reader = reader

    def __len__(self) -> int:
        return len(self.reader)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        _, s, _, c = self.reader.shape
        return (c, s, s)

    @property
    def has_labels(self) -> bool:
        return self.reader.labels is not None

    def _start(self, step: int, device: torch.device) -> Iterator[Item]:
        dataset = _StepBatches(self.reader, self.plan)
        if self.num_workers == 0:
            return (dataset[s] for s in itertools.count(step))
        return _loader(dataset, self.num_workers, device, sampler=itertools.count(step))


class _ShardStreams(IterableDataset[Item]):
    """Each DataLoader worker ``i`` serves stream ``(i + rotation) mod K`` as uint8 NCHW local batches."""

    def __init__(self, shards: ShardSet, plan: tuple[int, int, int, int], streams: int, step: int) -> None:
        self.shards, self.plan, self.streams, self.step = shards, plan, streams, step

    def batches_of(self, stream: int) -> Iterator[Item]:
        seed, global_batch, rank, world_size = self.plan
        local = global_batch // world_size
        counts = self.shards.counts
        consumed = stream_batches_before(self.step, stream, self.streams) * local
        start = stream_start(counts, seed, rank, world_size, stream, self.streams, consumed)
        images: list[NDArray[np.uint8]] = []
        labels: list[int] = []
        for shard, skip in stream_sequence(counts, seed, rank, world_size, stream, self.streams, start):
            url = self.shards.urls[shard]
            for key, image, label in iter_shard(url, skip=skip):
                if image is None or image.shape != self.shards.image_shape:
                    got = None if image is None else image.shape
                    raise ValueError(
                        f"shard {url!r} sample {key!r} is {got}, the set's {self.shards.image_shape}"
                    )
                images.append(image)
                labels.append(-1 if label is None else label)
                if len(images) == local:
                    y = torch.tensor(labels, dtype=torch.int64) if self.shards.has_labels else _NO_LABELS
                    yield _nchw(np.stack(images)), y
                    images, labels = [], []

    def __iter__(self) -> Iterator[Item]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        return self.batches_of((worker + self.step) % self.streams)


class ShardStreamData(_StreamBase):
    """Local batches streamed from tar shards in the order of ``impl.train.shard_order``."""

    def __init__(self, shards: ShardSet, num_workers: int = 0) -> None:
        super().__init__(num_workers)
        self.shards = shards

    def __len__(self) -> int:
        return len(self.shards)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        s, _, c = self.shards.image_shape
        return (c, s, s)

    @property
    def has_labels(self) -> bool:
        return self.shards.has_labels

    @property
    def streams(self) -> int:
        return max(1, self.num_workers)

    def bind(self, *, seed: int, global_batch: int, rank: int, world_size: int) -> None:
        check_shard_split(len(self.shards.counts), world_size, self.streams)
        super().bind(seed=seed, global_batch=global_batch, rank=rank, world_size=world_size)

    def _start(self, step: int, device: torch.device) -> Iterator[Item]:
        dataset = _ShardStreams(self.shards, self.plan, self.streams, step)
        if self.num_workers == 0:
            return dataset.batches_of(0)
        return _loader(dataset, self.num_workers, device)
