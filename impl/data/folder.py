"""Image folders: every ``.png``, ``.jpg``, ``.jpeg`` file below a directory (recursive, any letter case).

Files are read in sorted order of their path relative to the folder, so the dataset order is deterministic.
Each image is converted to RGB or greyscale with Pillow (an alpha channel is dropped), centre-cropped to a
square and resized to ``image_size`` (see ``impl.data.images`` for the filters).  With labels, the class name
of a file is the part of its file name before the first underscore (``cat_0001.png`` -> ``cat``); the sorted
class names are numbered 0, 1, ... .
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from impl.data.images import ALLOWED_CHANNELS, resize_square

__all__ = ["IMAGE_EXTENSIONS", "class_name_of", "list_image_files", "read_image_file", "read_image_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def list_image_files(folder: Path) -> list[Path]:
    """The image files below ``folder``, sorted by relative path; ValueError when there are none."""
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        allowed = ", ".join(IMAGE_EXTENSIONS)
        raise ValueError(f"data folder {str(folder)!r} holds no image files (allowed: {allowed})")
    return files


def class_name_of(path: Path) -> str:
    """The class name of an image file: its file name up to the first underscore (``label_XXX.png``)."""
    name = path.name
    if "_" not in name or name.index("_") == 0:
        raise ValueError(
            f"class labels from a folder need file names like 'label_XXX.png' (label before the first "
            f"underscore); {str(path)!r} has none"
        )
    return name.split("_", 1)[0]


def read_image_file(path: Path, channels: int, image_size: int) -> NDArray[np.uint8]:
    try:
        with Image.open(path) as opened:
            converted = opened.convert("L" if channels == 1 else "RGB")
    except Image.DecompressionBombError as err:
        raise ValueError(
            f"data: image file {str(path)!r} is refused as a decompression bomb ({err}); remove or shrink it"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"data: cannot read image file {str(path)!r}: {err}") from err
    arr = np.asarray(converted, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    resized: NDArray[np.uint8] = resize_square(arr[None], image_size)[0]
    return resized


def read_image_folder(
    folder: Path, *, image_size: int, channels: int = 3, with_labels: bool = False
) -> tuple[NDArray[np.uint8], NDArray[np.int64] | None, tuple[str, ...] | None]:
    """Read a folder into ``(images uint8 (N, S, S, C), labels int64 or None, class names or None)``."""
    if channels not in ALLOWED_CHANNELS:
        raise ValueError(f"channels must be one of {ALLOWED_CHANNELS}; got {channels!r}")
    files = list_image_files(folder)
    labels: NDArray[np.int64] | None = None
    class_names: tuple[str, ...] | None = None
    if with_labels:
        names = [class_name_of(p) for p in files]
        class_names = tuple(sorted(set(names)))
        ids = {name: k for k, name in enumerate(class_names)}
        labels = np.array([ids[name] for name in names], dtype=np.int64)
    images = np.empty((len(files), image_size, image_size, channels), dtype=np.uint8)
    for i, path in enumerate(files):
        images[i] = read_image_file(path, channels, image_size)
    return images, labels, class_names
