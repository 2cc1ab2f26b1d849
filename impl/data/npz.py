"""``.npz`` image files in the layout the original sampling script writes: ``arr_0`` uint8 NHWC images,
optional ``arr_1`` integer labels (one per image)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from impl.data.images import check_images

__all__ = ["read_npz"]


def read_npz(path: Path) -> tuple[NDArray[np.uint8], NDArray[np.int64] | None]:
    """Read ``(arr_0 images uint8 (N, H, W, C), arr_1 labels int64 (N,) or None)``; ValueError if bad."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"data: {str(path)!r} is not an npz archive (numpy.savez writes zip files)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = sorted(archive.files)
            images = np.asarray(archive["arr_0"]) if "arr_0" in keys else None
            labels = np.asarray(archive["arr_1"]) if "arr_1" in keys else None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
        raise ValueError(f"data: cannot read npz file {str(path)!r}: {err}") from err
    if images is None:
        raise ValueError(f"npz file {str(path)!r} has no 'arr_0' (uint8 NHWC images); has {keys}")
    images = check_images(images, f"arr_0 of {str(path)!r}")
    if images.shape[0] == 0:
        raise ValueError(f"arr_0 of {str(path)!r} holds no images (N = 0)")
    if labels is None:
        return images, None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"arr_1 of {str(path)!r} must be a 1-D integer array of labels; got dtype {labels.dtype}, "
            f"shape {labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"arr_1 of {str(path)!r} must have one label per image: {images.shape[0]} images, "
            f"{labels.shape[0]} labels"
        )
    if labels.size and labels.min() < 0:
        raise ValueError(f"arr_1 of {str(path)!r} must hold non-negative class ids; got {int(labels.min())}")
    return images, labels.astype(np.int64)
