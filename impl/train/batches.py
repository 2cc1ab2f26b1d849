"""What the trainer draws batches from: the ``BatchSource`` interface, and the training data held in memory.

Every source is bound once to the run's ``(seed, global batch, rank, world_size)`` and then asked for the
batch of step ``s`` with ``fetch(s, device)``.  Index-addressable sources (memory, ``.npy``, image folders)
serve rank ``r``'s share of the global batch ``global_batch_indices(seed, s, N, B)``
(``impl.runtime.seeding``), so their batches are a pure function of ``(seed, s, rank)`` and a resumed
run continues bit for bit; tar shards serve a stream whose order is fixed by the same numbers
(``impl.train.shard_order``).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from impl.runtime.seeding import global_batch_indices, rank_slice

# Data sets up to this size are moved to the training device once; larger ones stay on the host.
DEVICE_RESIDENT_BYTES = 2 * 1024**3


class BatchSource(Protocol):
    """The data interface of ``impl.train.Trainer``."""

    @property
    def sample_shape(self) -> tuple[int, ...]: ...

    @property
    def has_labels(self) -> bool: ...

    def __len__(self) -> int: ...

    def to(self, device: torch.device) -> BatchSource: ...

    def bind(self, *, seed: int, global_batch: int, rank: int, world_size: int) -> None: ...

    def fetch(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def local_batch_indices(
    seed: int, step: int, num_items: int, global_batch: int, rank: int, world_size: int
) -> torch.Tensor:
    """Rank ``rank``'s share of the global batch of ``step`` (int64 CPU tensor)."""
    share = rank_slice(global_batch, rank, world_size)
    return global_batch_indices(seed, step, num_items, global_batch)[share]


def to_model_range_on(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to float32 ``p/127.5 − 1``; float data as float32 unchanged."""
    return x.to(torch.float32) / 127.5 - 1.0 if x.dtype == torch.uint8 else x.to(torch.float32)


class InMemoryData:
    """Training examples as one tensor ``(N, C, H, W)`` plus optional int64 labels ``(N,)``.

    uint8 data (8-bit images) is mapped to [-1, 1] by ``p/127.5 − 1`` when a batch is fetched; float data is
    used as is.
    """

    def __init__(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        if x.ndim < 2:
            raise ValueError(f"x must have shape (N, ...) with at least 2 dims, got {tuple(x.shape)}")
        if labels is not None and labels.shape != (x.shape[0],):
            raise ValueError(f"labels must have shape ({x.shape[0]},), got {tuple(labels.shape)}")
        self.x = x
        self.labels = labels
        self.plan: tuple[int, int, int, int] = (0, 1, 0, 1)

    def bind(self, *, seed: int, global_batch: int, rank: int, world_size: int) -> None:
        """Fix the run's ``(seed, global batch, rank, world_size)`` that ``fetch`` reads its indices from."""
        self.plan = (seed, global_batch, rank, world_size)

    def fetch(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's share of the global batch of ``step`` (see the module docstring)."""
        seed, global_batch, rank, world_size = self.plan
        return self.batch(local_batch_indices(seed, step, len(self), global_batch, rank, world_size), device)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    @classmethod
    def from_image_dataset(cls, dataset: Any) -> InMemoryData:
        """From an ``impl.data.ImageDataset`` (``images`` uint8 NHWC, ``labels`` int64 or None)."""
        images = np.asarray(dataset.images)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"dataset.images must be uint8 NHWC, got {images.dtype} {images.shape}")
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        labels_np = getattr(dataset, "labels", None)
        labels = None if labels_np is None else torch.from_numpy(np.asarray(labels_np, dtype=np.int64))
        return cls(x, labels)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x.shape[1:])

    def to(self, device: torch.device) -> InMemoryData:
        if self.x.numel() * self.x.element_size() > DEVICE_RESIDENT_BYTES:
            return self
        labels = None if self.labels is None else self.labels.to(device)
        moved = InMemoryData(self.x.to(device), labels)
        moved.plan = self.plan
        return moved

    def batch(self, indices: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Examples at ``indices`` as float32 on ``device`` (and their labels)."""
        idx = copy_without_host_sync(indices, self.x.device)
        x = copy_without_host_sync(self.x.index_select(0, idx), device)
        x = to_model_range_on(x)
        labels = None
        if self.labels is not None:
            label_idx = copy_without_host_sync(idx, self.labels.device)
            labels = copy_without_host_sync(self.labels.index_select(0, label_idx), device)
        return x, labels


def copy_without_host_sync(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``.  A host → CUDA copy goes through pinned memory with ``non_blocking=True``:
    a copy from pageable memory makes the host wait for the GPU's queue to drain once per training step.
    PyTorch's pinned-memory allocator keeps the staging buffer alive until the copy has run."""
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
