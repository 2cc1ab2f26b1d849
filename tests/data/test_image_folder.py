"""Image folders: recursive sorted listing, crop + resize, RGB/greyscale, labels from file names, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from impl.data import load_data


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if array.ndim == 2 else "RGB"
    Image.fromarray(array, mode=mode).save(path)


def _solid(value: tuple[int, int, int], size: tuple[int, int] = (6, 6)) -> np.ndarray:
    return np.broadcast_to(np.array(value, dtype=np.uint8), (*size, 3)).copy()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    _save(root / "b_2.png", _solid((0, 0, 255)))
    _save(root / "a_1.PNG", _solid((255, 0, 0)))
    _save(root / "sub" / "a_3.jpg", _solid((0, 255, 0)))
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_is_read_recursively_in_sorted_order(folder: Path) -> None:
    ds = load_data(folder, image_size=4)
    assert len(ds) == 3 and ds.images.shape == (3, 4, 4, 3) and ds.labels is None
    # sorted relative paths: a_1.PNG, b_2.png, sub/a_3.jpg
    assert ds.images[0, 0, 0].tolist() == [255, 0, 0]
    assert ds.images[1, 0, 0].tolist() == [0, 0, 255]
    green = ds.images[2, 0, 0].astype(int)  # JPEG is lossy: green dominates
    assert green[1] > 200 and green[0] < 60 and green[2] < 60


def test_class_names_come_from_the_file_name_prefix(folder: Path) -> None:
    ds = load_data(folder, image_size=4, class_cond=True)
    assert ds.class_names == ("a", "b") and ds.num_classes == 2
    assert ds.labels is not None and ds.labels.tolist() == [0, 1, 0]


def test_greyscale_option_uses_luma(folder: Path) -> None:
    ds = load_data(folder, image_size=4, channels=1)
    assert ds.channels == 1
    # ITU-R 601-2 luma of pure red and pure blue: 299*255/1000 = 76.2, 114*255/1000 = 29.1
    assert ds.images[0, 0, 0, 0] == 76 and ds.images[1, 0, 0, 0] == 29


def test_centre_crop_then_resize(tmp_path: Path) -> None:
    # 4 rows x 8 columns: two outer 2-column bands are cropped away, the centre 4x4 keeps 2 colours.
    image = np.zeros((4, 8), dtype=np.uint8)
    image[:, :2] = 255
    image[:, 2:4] = 10
    image[:, 4:6] = 90
    image[:, 6:] = 255
    _save(tmp_path / "x_0.png", image)
    ds = load_data(tmp_path, image_size=2, channels=1)
    # BOX 4x4 -> 2x2 averages 2x2 blocks: left column 10, right column 90.
    assert ds.images[0, :, :, 0].tolist() == [[10, 90], [10, 90]]


def test_folder_errors(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(ValueError, match="image_size is required"):
        load_data(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_data(empty, image_size=4)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "c_1.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=r"c_1\.png"):
        load_data(broken, image_size=4)
    nolabel = tmp_path / "nolabel"
    _save(nolabel / "plain.png", _solid((1, 2, 3)))
    with pytest.raises(ValueError, match=r"plain\.png"):
        load_data(nolabel, image_size=4, class_cond=True)
    other = tmp_path / "file.txt"
    other.write_text("x")
    with pytest.raises(ValueError, match=r"not an \.npz"):
        load_data(other)
