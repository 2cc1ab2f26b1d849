"""Downsampled ImageNet (the 32x32 / 64x64 sets of Chrabaszcz et al. 2017) in its ``.npz`` batch layout.

The archives unpack to ``train_data_batch_1.npz`` … ``train_data_batch_10.npz`` and ``val_data.npz``.  Each
holds ``data``: uint8 ``(n, 3·S·S)``, one row per image with the S·S red, then green, then blue pixels row by
row (CHW), and ``labels``: n class ids 1..1000 (1-based; made 0-based here).  The training batches also hold
``mean``, which is not needed.
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "IMAGENET_CLASSES",
    "imagenet_batch_files",
    "imagenet_batch_size",
    "is_imagenet_batch",
    "read_imagenet_batch",
    "read_imagenet_rows",
    "rows_to_nhwc",
]

IMAGENET_CLASSES = 1000
_TRAIN = re.compile(r"^train_data_batch_(\d+)\.npz$")
_VAL = re.compile(r"^val_data(_\d+)?\.npz$")


def is_imagenet_batch(path: Path) -> bool:
    """An ``.npz`` with a ``data`` array (the downsampled-ImageNet layout), not ``arr_0``."""
    if not (path.is_file() and path.suffix.lower() == ".npz" and zipfile.is_zipfile(path)):
        return False
    with zipfile.ZipFile(path) as archive:
        return "data.npy" in archive.namelist()


def imagenet_batch_files(folder: Path, split: str) -> list[Path]:
    """The batch files of ``split`` ("train": train_data_batch_K.npz by K; "test": val_data.npz)."""
    pattern = _VAL if split == "test" else _TRAIN
    found = [p for p in folder.iterdir() if p.is_file() and pattern.match(p.name)]

    def number(p: Path) -> int:
        match = re.search(r"(\d+)\.npz$", p.name)
        return int(match.group(1)) if match else 0

    return sorted(found, key=number)


def imagenet_batch_size(path: Path) -> tuple[int, int]:
    """``(n images, side S)`` of a batch file from the header of its ``data`` array (nothing else is read)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("data.npy") as member:
            version = np.lib.format.read_magic(member)
            fmt = np.lib.format
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(member)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"ImageNet batch {str(path)!r} has no readable 'data' array: {err}") from None
    side = math.isqrt(shape[1] // 3) if len(shape) == 2 else 0
    if dtype != np.uint8 or len(shape) != 2 or side < 1 or shape[1] != 3 * side * side:
        raise ValueError(
            f"ImageNet batch {str(path)!r}: 'data' must be uint8 (n, 3*S*S); got {dtype} {shape}"
        )
    return int(shape[0]), side


def read_imagenet_rows(path: Path) -> tuple[NDArray[np.uint8], NDArray[np.int64], int]:
    """One batch file as ``(uint8 CHW rows (n, 3·S·S), int64 labels 0..999, S)``; ValueError naming it."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "data" not in archive.files or "labels" not in archive.files:
                raise ValueError(
                    f"ImageNet batch {str(path)!r} must hold 'data' and 'labels'; has {sorted(archive.files)}"
                )
            data = np.asarray(archive["data"])
            labels = np.asarray(archive["labels"])
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"ImageNet batch {str(path)!r} is not a readable .npz: {err}") from None
    side = math.isqrt(data.shape[1] // 3) if data.ndim == 2 else 0
    if data.dtype != np.uint8 or data.ndim != 2 or side < 1 or data.shape[1] != 3 * side * side:
        raise ValueError(
            f"ImageNet batch {str(path)!r}: 'data' must be uint8 (n, 3*S*S); got {data.dtype} {data.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"ImageNet batch {str(path)!r}: 'labels' must hold one integer per row; got {labels.shape}"
        )
    if labels.size and (labels.min() < 1 or labels.max() > IMAGENET_CLASSES):
        raise ValueError(
            f"ImageNet batch {str(path)!r}: 'labels' must be 1-based class ids 1..{IMAGENET_CLASSES}; "
            f"got {int(labels.min())}..{int(labels.max())}"
        )
    return data, labels.astype(np.int64) - 1, side


def rows_to_nhwc(rows: NDArray[np.uint8], side: int) -> NDArray[np.uint8]:
    """CHW rows ``(n, 3·S·S)`` to uint8 NHWC ``(n, S, S, 3)``."""
    return np.ascontiguousarray(rows.reshape(-1, 3, side, side).transpose(0, 2, 3, 1))


def read_imagenet_batch(path: Path) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """One batch file as ``(uint8 NHWC images, int64 labels 0..999)``; ValueError naming the file if bad."""
    rows, labels, side = read_imagenet_rows(path)
    return rows_to_nhwc(rows, side), labels
