"""``.npz`` loading and the atomic writers (``save_npz_atomic``, ``save_image_grid``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from impl.data import image_grid, load_data, save_image_grid, save_npz_atomic


def _images(n: int = 5, size: int = 4, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


def test_npz_round_trip_with_labels(tmp_path: Path) -> None:
    images, labels = _images(), np.array([0, 1, 1, 4, 2])
    path = tmp_path / "s.npz"
    save_npz_atomic(path, images, labels)
    ds = load_data(path, class_cond=True)
    np.testing.assert_array_equal(ds.images, images)
    assert ds.labels is not None and ds.labels.tolist() == labels.tolist() and ds.num_classes == 5
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temporary file left behind


def test_npz_without_labels_and_resize(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    save_npz_atomic(path, _images())
    ds = load_data(path, image_size=2)
    assert ds.images.shape == (5, 2, 2, 3) and ds.labels is None
    with pytest.raises(ValueError, match="class_cond=True needs labels"):
        load_data(path, class_cond=True)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"images": np.zeros((2, 4, 4, 3), np.uint8)}, "no 'arr_0'"),
        ({"arr_0": np.zeros((2, 4, 4, 3), np.float32)}, "uint8"),
        ({"arr_0": np.zeros((2, 4, 4), np.uint8)}, "4 dimensions"),
        ({"arr_0": np.zeros((2, 4, 4, 3), np.uint8), "arr_1": np.zeros(3, np.int64)}, "one label per image"),
        ({"arr_0": np.zeros((2, 4, 4, 3), np.uint8), "arr_1": np.zeros(2, np.float32)}, "integer"),
        ({"arr_0": np.zeros((2, 4, 6, 3), np.uint8)}, "not square"),
    ],
)
def test_bad_npz_content(tmp_path: Path, arrays: dict[str, Any], match: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        load_data(path)


def test_corrupt_npz_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"corrupt\.npz"):
        load_data(path)


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    save_npz_atomic(path, _images())
    before = path.read_bytes()
    with pytest.raises(ValueError, match="labels"):
        save_npz_atomic(path, _images(), np.array([1, 2]))
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="does not exist"):
        save_npz_atomic(tmp_path / "missing" / "s.npz", _images())


def test_image_grid_layout() -> None:
    images = np.stack([np.full((2, 2, 1), 10 * (i + 1), dtype=np.uint8) for i in range(5)])
    grid = image_grid(images, nrow=3, padding=1)
    # 3 columns, 2 rows: width 1 + 3*(2+1) = 10, height 1 + 2*(2+1) = 7
    assert grid.shape == (7, 10, 1)
    assert grid[1, 1, 0] == 10 and grid[1, 4, 0] == 20 and grid[1, 7, 0] == 30
    assert grid[4, 1, 0] == 40 and grid[4, 4, 0] == 50
    assert grid[4, 7, 0] == 0 and grid[0, 0, 0] == 0  # empty cell and padding are black
    # defaults: nrow = ceil(sqrt(5)) = 3 columns, 2 rows, padding 2: (2 + 2*4, 2 + 3*4)
    assert image_grid(images).shape == (10, 14, 1)


def test_save_image_grid_png_round_trip(tmp_path: Path) -> None:
    images = _images(4)
    path = tmp_path / "grid.png"
    save_image_grid(path, images, nrow=2)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(png), image_grid(images, nrow=2))
    save_image_grid(path, images[:, :, :, :1])
    with Image.open(path) as png:
        assert png.mode == "L"
    with pytest.raises(ValueError, match="nrow"):
        save_image_grid(path, images, nrow=0)
