"""An image folder read lazily: the file list (and labels) at start-up, pixels decoded when a batch asks.

Files, order, labels, crop and resize are exactly those of ``impl.data.folder.read_image_folder``, so a
lazy folder delivers the same uint8 images as the in-memory one; decoding runs in DataLoader workers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from impl.data.folder import class_name_of, list_image_files, read_image_file
from impl.data.images import ALLOWED_CHANNELS

__all__ = ["LazyImageFolder"]


class LazyImageFolder:
    """The images of ``folder`` as uint8 ``(S, S, C)`` decoded on demand, with optional file-name labels."""

    def __init__(
        self, folder: Path, *, image_size: int, channels: int = 3, with_labels: bool = False
    ) -> None:
        if channels not in ALLOWED_CHANNELS:
            raise ValueError(f"channels must be one of {ALLOWED_CHANNELS}; got {channels!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive int; got {image_size!r}")
        self.files = list_image_files(folder)
        self.image_size = image_size
        self.channels = channels
        self.labels: NDArray[np.int64] | None = None
        self.class_names: tuple[str, ...] | None = None
        if with_labels:
            names = [class_name_of(p) for p in self.files]
            self.class_names = tuple(sorted(set(names)))
            ids = {name: k for k, name in enumerate(self.class_names)}
            self.labels = np.array([ids[name] for name in names], dtype=np.int64)
        self.shape = (len(self.files), image_size, image_size, channels)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def nbytes(self) -> int:
        """The bytes the decoded set would take in memory."""
        return int(np.prod(self.shape))

    def read(self, indices: NDArray[np.int64]) -> NDArray[np.uint8]:
        """The decoded images at ``indices`` as uint8 NHWC; an unreadable file raises ValueError naming it."""
        idx = np.asarray(indices, dtype=np.int64)
        out = np.empty((idx.size, *self.shape[1:]), dtype=np.uint8)
        for k, i in enumerate(idx.tolist()):
            out[k] = read_image_file(self.files[i], self.channels, self.image_size)
        return out

    def read_all(self) -> NDArray[np.uint8]:
        return self.read(np.arange(len(self), dtype=np.int64))
