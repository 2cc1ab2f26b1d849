"""Image writers: ``.npz`` sample files and PNG grids, both through :func:`impl.atomic.atomic_write`.

A reader never sees a half-written file, and a failed write leaves any previous file untouched.
"""

from __future__ import annotations

import math
import os
from typing import IO

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from impl.atomic import atomic_write
from impl.data.images import check_images

__all__ = ["image_grid", "save_image_grid", "save_npz_atomic"]


def save_npz_atomic(
    path: str | os.PathLike[str], images: NDArray[np.uint8], labels: NDArray[np.integer] | None = None
) -> None:
    """Write ``arr_0`` = uint8 NHWC ``images`` (and ``arr_1`` = int64 ``labels``) to ``path`` atomically."""
    images = check_images(images)
    label_array: NDArray[np.int64] | None = None
    if labels is not None:
        labels = np.asarray(labels)
        integer = np.issubdtype(labels.dtype, np.integer)
        if labels.ndim != 1 or not integer or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"labels must be a 1-D integer array with one entry per image ({images.shape[0]}); "
                f"got dtype {labels.dtype}, shape {labels.shape}"
            )
        label_array = labels.astype(np.int64)

    def write(handle: IO[bytes]) -> None:
        if label_array is None:
            np.savez(handle, arr_0=images)
        else:
            np.savez(handle, arr_0=images, arr_1=label_array)

    atomic_write(path, write)


def image_grid(images: NDArray[np.uint8], nrow: int | None = None, *, padding: int = 2) -> NDArray[np.uint8]:
    """Tile N images of S x S into a uint8 HWC grid: ``nrow`` images per row (default ``ceil(sqrt(N))``),
    ``padding`` black pixels between and around them, row-major order, empty cells black."""
    images = check_images(images, "images_uint8_nhwc", square=False)
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("images_uint8_nhwc must hold at least one image; got N = 0")
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int (images per row) or None; got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int; got {padding!r}")
    ncol = min(nrow, n)
    rows = math.ceil(n / ncol)
    grid = np.zeros((padding + rows * (h + padding), padding + ncol * (w + padding), c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[top : top + h, left : left + w, :] = images[i]
    return grid


def save_image_grid(
    path: str | os.PathLike[str],
    images_uint8_nhwc: NDArray[np.uint8],
    nrow: int | None = None,
    *,
    padding: int = 2,
) -> None:
    """Save ``image_grid(images_uint8_nhwc, nrow, padding=padding)`` as a PNG at ``path`` atomically."""
    grid = image_grid(images_uint8_nhwc, nrow, padding=padding)
    if grid.shape[2] == 1:
        picture = Image.fromarray(grid[:, :, 0], mode="L")
    else:
        picture = Image.fromarray(grid, mode="RGB")
    atomic_write(path, lambda handle: picture.save(handle, format="PNG"))
