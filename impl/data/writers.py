"""Image writers: ``.npz`` sample files and PNG grids, both through :func:`impl.atomic.atomic_write`.

A reader never sees a half-written file, and a failed write leaves any previous file untouched.

Viewable pictures: a PNG grid (or a trajectory strip) of small images is enlarged by an integer factor,
nearest neighbour (each pixel becomes an f x f block; no new values).  The rule, ``scale`` 0 ("auto"):
the smallest factor that makes every tile at least ``AUTO_MIN_TILE_PX`` (64) pixels on its shorter side,
lowered so the picture's longer side stays at most ``AUTO_MAX_SIDE_PX`` (4096), and never below 1, so
tiles of 64 px or more are never enlarged.  ``scale`` 1 leaves the picture as it is; ``scale`` f > 1 asks
for that factor, refused when the picture's longer side would pass ``MAX_SIDE_PX``.  The ``.npz`` files
are never enlarged.
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

__all__ = [
    "AUTO_MAX_SIDE_PX",
    "AUTO_MIN_TILE_PX",
    "MAX_SIDE_PX",
    "auto_scale",
    "enlarge_nearest",
    "grid_shape",
    "image_grid",
    "resolve_scale",
    "save_image_grid",
    "save_npz_atomic",
    "save_png",
]

#: ``scale`` 0 (auto) enlarges until each tile's shorter side is at least this many pixels …
AUTO_MIN_TILE_PX = 64
#: … but not past this longer side of the whole picture.
AUTO_MAX_SIDE_PX = 4096
#: An explicit factor > 1 may not make the picture's longer side longer than this.
MAX_SIDE_PX = 16384


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
    grid = np.zeros((*grid_shape(n, h, w, nrow, padding=padding), c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[top : top + h, left : left + w, :] = images[i]
    return grid


def grid_shape(n: int, h: int, w: int, nrow: int | None = None, *, padding: int = 2) -> tuple[int, int]:
    """(height, width) of :func:`image_grid` of ``n`` images of ``h`` x ``w``: ``ncol = min(nrow, n)``
    columns (``nrow`` default ``ceil(sqrt(n))``), ``ceil(n / ncol)`` rows, ``padding`` around each."""
    if n < 1 or (nrow is not None and nrow < 1):
        raise ValueError(f"n and nrow must be >= 1 (nrow may be None); got n = {n}, nrow = {nrow}")
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    ncol = min(nrow, n)
    rows = math.ceil(n / ncol)
    return padding + rows * (h + padding), padding + ncol * (w + padding)


def auto_scale(tile_hw: tuple[int, int], picture_hw: tuple[int, int]) -> int:
    """The "auto" factor: ``ceil(AUTO_MIN_TILE_PX / min(tile))``, lowered to
    ``AUTO_MAX_SIDE_PX // max(picture)`` when that is smaller, and at least 1."""
    if min(tile_hw) < 1 or min(picture_hw) < 1:
        raise ValueError(f"tile and picture sizes must be >= 1 pixel; got {tile_hw}, {picture_hw}")
    wanted = -(-AUTO_MIN_TILE_PX // min(tile_hw))
    return max(1, min(wanted, AUTO_MAX_SIDE_PX // max(picture_hw)))


def resolve_scale(
    scale: int, tile_hw: tuple[int, int], picture_hw: tuple[int, int], *, name: str = "scale"
) -> int:
    """The enlargement factor of a picture of ``picture_hw`` made of tiles of ``tile_hw``: ``scale`` 0 is
    :func:`auto_scale`, ``scale`` >= 1 itself.  Raises ValueError naming ``name`` for a negative or
    non-integer ``scale``, or a factor > 1 that makes the longer side exceed ``MAX_SIDE_PX``."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 0:
        raise ValueError(f"{name} must be an integer >= 0 (0: auto, 1: no enlargement); got {scale!r}")
    if scale == 0:
        return auto_scale(tile_hw, picture_hw)
    side = scale * max(picture_hw)
    if scale > 1 and side > MAX_SIDE_PX:
        raise ValueError(
            f"{name} {scale} would make a picture {side} px on its longer side (at most {MAX_SIDE_PX}); "
            "use 0 (auto), 1 (no enlargement) or a smaller factor"
        )
    return scale


def enlarge_nearest(picture_hwc: NDArray[np.uint8], factor: int) -> NDArray[np.uint8]:
    """Nearest-neighbour enlargement of a uint8 HWC picture by the integer ``factor``: output pixel
    ``(i, j)`` is input pixel ``(i // factor, j // factor)``; ``factor`` 1 returns the input itself."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a positive integer; got {factor!r}")
    if not isinstance(picture_hwc, np.ndarray) or picture_hwc.dtype != np.uint8 or picture_hwc.ndim != 3:
        raise ValueError("picture_hwc must be a uint8 array of shape (H, W, C)")
    if factor == 1:
        return picture_hwc
    h, w, c = picture_hwc.shape
    blocks = np.broadcast_to(picture_hwc[:, None, :, None, :], (h, factor, w, factor, c))
    return np.ascontiguousarray(blocks).reshape(h * factor, w * factor, c)


def save_png(path: str | os.PathLike[str], picture_hwc: NDArray[np.uint8]) -> None:
    """Write a uint8 HWC picture (C = 1: greyscale "L", C = 3: "RGB") as a PNG at ``path`` atomically."""
    if picture_hwc.shape[2] == 1:
        picture = Image.fromarray(picture_hwc[:, :, 0], mode="L")
    else:
        picture = Image.fromarray(picture_hwc, mode="RGB")
    atomic_write(path, lambda handle: picture.save(handle, format="PNG"))


def save_image_grid(
    path: str | os.PathLike[str],
    images_uint8_nhwc: NDArray[np.uint8],
    nrow: int | None = None,
    *,
    padding: int = 2,
    scale: int = 1,
    name: str = "scale",
) -> None:
    """Save ``image_grid(images_uint8_nhwc, nrow, padding=padding)`` as a PNG at ``path`` atomically,
    enlarged by :func:`resolve_scale` (``scale`` 1, the default: as it is; 0: the auto rule); a refused
    ``scale`` is reported as ``name`` (a command passes its flag, e.g. ``"--grid_scale"``)."""
    grid = image_grid(images_uint8_nhwc, nrow, padding=padding)
    tile = (int(images_uint8_nhwc.shape[1]), int(images_uint8_nhwc.shape[2]))
    factor = resolve_scale(scale, tile, (grid.shape[0], grid.shape[1]), name=name)
    save_png(path, enlarge_nearest(grid, factor))
