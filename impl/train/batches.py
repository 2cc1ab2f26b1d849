"""The training data held in memory, fetched by index (the index list comes from impl.runtime.seeding)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# Data sets up to this size are moved to the training device once; larger ones stay on the host.
DEVICE_RESIDENT_BYTES = 2 * 1024**3


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
        return InMemoryData(self.x.to(device), labels)

    def batch(self, indices: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Examples at ``indices`` as float32 on ``device`` (and their labels)."""
        idx = copy_without_host_sync(indices, self.x.device)
        x = copy_without_host_sync(self.x.index_select(0, idx), device)
        x = x.to(torch.float32) / 127.5 - 1.0 if x.dtype == torch.uint8 else x.to(torch.float32)
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
