"""A ``.npy`` of uint8 NHWC images read row by row, never loaded whole, with an optional labels ``.npy``.

The header is parsed by numpy (``numpy.load(mmap_mode="r")`` validates dtype, rank and layout); rows are then
read with positioned reads (``os.pread``) of the rows a batch needs, so the operating system's page cache,
not the process, holds the file: the resident memory of a run does not grow with the file.
Labels sit beside the images: ``X_labels.npy`` for ``X.npy``, or ``labels.npy`` beside ``images.npy`` (the
layout ``iddpm prepare --format npy`` writes); they are loaded into memory (8 bytes per image).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from impl.data.images import ALLOWED_CHANNELS

__all__ = ["NpyImages", "labels_path_for"]


def labels_path_for(images_path: Path) -> Path | None:
    """The labels file beside ``images_path``, or None when there is none."""
    candidates = [images_path.with_name(f"{images_path.stem}_labels.npy")]
    if images_path.stem == "images":
        candidates.append(images_path.with_name("labels.npy"))
    return next((p for p in candidates if p.is_file()), None)


def _load_labels(path: Path, n: int) -> NDArray[np.int64]:
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"labels file {str(path)!r} is not a readable .npy: {err}") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.shape[0] != n:
        raise ValueError(
            f"labels file {str(path)!r} must be a 1-D integer array of {n} labels; got {labels.dtype} "
            f"{labels.shape}"
        )
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels file {str(path)!r} holds a negative label {int(labels.min())}")
    out: NDArray[np.int64] = labels.astype(np.int64)
    return out


class NpyImages:
    """Random access to the rows of a uint8 ``(N, S, S, C)`` ``.npy`` (C in 1, 3), opened per process."""

    def __init__(self, path: Path, labels_path: Path | None = None) -> None:
        self.path = path
        try:
            mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise ValueError(f"data file {str(path)!r} is not a readable .npy: {err}") from None
        if not isinstance(mapped, np.memmap):
            raise ValueError(f"data file {str(path)!r} must hold one array")
        if mapped.dtype != np.uint8:
            raise ValueError(f"data file {str(path)!r} must have dtype uint8; got {mapped.dtype}")
        if mapped.ndim != 4 or mapped.shape[1] != mapped.shape[2] or mapped.shape[3] not in ALLOWED_CHANNELS:
            raise ValueError(
                f"data file {str(path)!r} must have shape (N, S, S, C) with C in {ALLOWED_CHANNELS}; got "
                f"{mapped.shape}"
            )
        if not mapped.flags.c_contiguous:
            raise ValueError(f"data file {str(path)!r} must be stored in C order")
        if mapped.shape[0] == 0:
            raise ValueError(f"data file {str(path)!r} holds no images (N = 0)")
        self.shape: tuple[int, int, int, int] = tuple(int(s) for s in mapped.shape)  # type: ignore[assignment]
        self.offset = int(mapped.offset)
        self.row_bytes = int(np.prod(self.shape[1:]))
        del mapped
        expected = self.offset + self.shape[0] * self.row_bytes
        if path.stat().st_size < expected:
            raise ValueError(
                f"data file {str(path)!r} is truncated: {path.stat().st_size} bytes, needs {expected}"
            )
        found = labels_path if labels_path is not None else labels_path_for(path)
        self.labels_path = found
        self.labels: NDArray[np.int64] | None = None if found is None else _load_labels(found, self.shape[0])
        self._fd: int | None = None
        self._pid = -1

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row_bytes

    def _handle(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a DataLoader worker opens its own descriptor
            self._fd = os.open(self.path, os.O_RDONLY)
            self._pid = os.getpid()
        return self._fd

    def read(self, indices: NDArray[np.int64]) -> NDArray[np.uint8]:
        """The images at ``indices`` (in that order) as uint8 NHWC; consecutive rows are read together."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.shape[0]):
            raise IndexError(
                f"indices must be in [0, {self.shape[0]}); got {int(idx.min())}..{int(idx.max())}"
            )
        unique, inverse = np.unique(idx, return_inverse=True)
        out = np.empty((unique.size, *self.shape[1:]), dtype=np.uint8)
        flat = out.reshape(unique.size, self.row_bytes)
        fd = self._handle()
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        for run in np.split(np.arange(unique.size), breaks):
            if run.size == 0:
                continue
            first, length = int(unique[run[0]]), run.size * self.row_bytes
            raw = os.pread(fd, length, self.offset + first * self.row_bytes)
            if len(raw) != length:
                raise ValueError(f"data file {str(self.path)!r} is truncated at image {first}")
            flat[run[0] : run[0] + run.size] = np.frombuffer(raw, dtype=np.uint8).reshape(run.size, -1)
        return out[inverse.reshape(-1)]

    def read_all(self) -> NDArray[np.uint8]:
        return self.read(np.arange(self.shape[0], dtype=np.int64))

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_fd"], state["_pid"] = None, -1
        return state
