"""Viewable PNGs: nearest-neighbour enlargement by an integer factor, the auto rule, ``save_image_grid``'s
``scale``; the rule's numbers (64 px tiles, 4096 px at most) are those documented in docs/guidance.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from impl.data.writers import (
    AUTO_MAX_SIDE_PX,
    AUTO_MIN_TILE_PX,
    MAX_SIDE_PX,
    auto_scale,
    enlarge_nearest,
    grid_shape,
    image_grid,
    resolve_scale,
    save_image_grid,
)


@pytest.mark.parametrize(("h", "w", "c", "factor"), [(1, 1, 1, 1), (3, 5, 1, 2), (4, 2, 3, 7), (8, 8, 1, 8)])
def test_enlarge_nearest_is_np_repeat_on_both_axes(h: int, w: int, c: int, factor: int) -> None:
    picture = np.random.default_rng(h * 100 + w * 10 + factor).integers(0, 256, (h, w, c), dtype=np.uint8)
    enlarged = enlarge_nearest(picture, factor)
    expected = np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)
    assert enlarged.dtype == np.uint8 and enlarged.shape == (h * factor, w * factor, c)
    assert np.array_equal(enlarged, expected)


def test_enlarge_nearest_by_hand() -> None:
    picture = np.array([[[1], [2]], [[3], [4]]], dtype=np.uint8)
    expected = np.array(
        [[1, 1, 1, 2, 2, 2], [1, 1, 1, 2, 2, 2], [1, 1, 1, 2, 2, 2], [3, 3, 3, 4, 4, 4]]
        + [[3, 3, 3, 4, 4, 4]] * 2,
        dtype=np.uint8,
    )[:, :, None]
    assert np.array_equal(enlarge_nearest(picture, 3), expected)


@pytest.mark.parametrize("factor", [0, -1, 1.5, True])
def test_enlarge_nearest_refuses_a_bad_factor(factor: object) -> None:
    with pytest.raises(ValueError, match="factor"):
        enlarge_nearest(np.zeros((2, 2, 1), np.uint8), factor)  # type: ignore[arg-type]


def test_grid_shape_is_the_grid_image_grid_builds() -> None:
    for n, nrow in [(1, None), (5, None), (64, None), (7, 3), (6, 6)]:
        images = np.zeros((n, 8, 6, 1), np.uint8)
        assert grid_shape(n, 8, 6, nrow) == image_grid(images, nrow).shape[:2]


def test_auto_rule() -> None:
    assert (AUTO_MIN_TILE_PX, AUTO_MAX_SIDE_PX) == (64, 4096)
    # 64 digits of 8 x 8: the grid is 2 + 8 * 10 = 82 px; 8x makes each digit 64 px and the grid 656 px
    assert grid_shape(64, 8, 8) == (82, 82)
    assert auto_scale((8, 8), (82, 82)) == 8
    # the smallest factor reaching 64 px: 10 px tiles need 7 (70 px), 6 px tiles 11 (66 px)
    assert auto_scale((10, 10), (100, 100)) == 7 and auto_scale((6, 9), (50, 50)) == 11
    # tiles of 64 px or more are never enlarged
    assert auto_scale((64, 64), (66, 66)) == 1 and auto_scale((256, 256), (258, 258)) == 1
    # capped so the picture's longer side stays <= 4096: 8 px tiles in a 1000 px wide strip get 4x
    assert auto_scale((8, 8), (22, 1000)) == 4
    # and never below 1, however long the picture
    assert auto_scale((8, 8), (22, 10_002)) == 1


def test_resolve_scale() -> None:
    assert resolve_scale(0, (8, 8), (82, 82)) == 8
    assert resolve_scale(1, (8, 8), (82, 82)) == 1
    assert resolve_scale(3, (8, 8), (82, 82)) == 3
    assert resolve_scale(1, (8, 8), (22, MAX_SIDE_PX * 4)) == 1  # no enlargement is always allowed
    with pytest.raises(ValueError, match=r"--grid_scale 200 would make a picture 16400 px"):
        resolve_scale(200, (8, 8), (82, 82), name="--grid_scale")
    for bad in (-1, 2.0, True, "2"):
        with pytest.raises(ValueError, match=r"^--grid_scale must be an integer >= 0 \(0: auto"):
            resolve_scale(bad, (8, 8), (82, 82), name="--grid_scale")  # type: ignore[arg-type]


@pytest.mark.parametrize(("scale", "factor"), [(0, 8), (1, 1), (2, 2)])
def test_save_image_grid_writes_the_enlarged_grid(tmp_path: Path, scale: int, factor: int) -> None:
    images = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
    path = tmp_path / "grid.png"
    save_image_grid(path, images, scale=scale)
    with Image.open(path) as png:
        assert png.size == (82 * factor, 82 * factor) and png.mode == "L"
        decoded = np.asarray(png)[:, :, None]
    grid = image_grid(images)
    assert np.array_equal(decoded, np.repeat(np.repeat(grid, factor, axis=0), factor, axis=1))
    # the top-left digit starts after the 2 px padding, each of its pixels a factor x factor block
    assert np.array_equal(
        decoded[2 * factor : 2 * factor + factor, 2 * factor, 0], [images[0, 0, 0, 0]] * factor
    )
