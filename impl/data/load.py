"""``load_data``: one entry point for the built-in digits, image folders and ``.npz`` files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from impl.data.dataset import ImageDataset
from impl.data.digits import DIGITS_CLASS_NAMES, digits_split, load_digits_arrays
from impl.data.folder import read_image_folder
from impl.data.images import ALLOWED_CHANNELS, convert_channels, resize_square
from impl.data.npz import read_npz

__all__ = ["DIGITS_SPECS", "load_data"]

DIGITS_SPECS = ("digits", "digits:train", "digits:held_out")


def _check_image_size(image_size: int | None) -> None:
    if image_size is None:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int or None; got {image_size!r}")


def _digits(spec: str) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    images, labels = load_digits_arrays()
    if spec == "digits":
        return images, labels
    split = digits_split()
    keep = split.train if spec == "digits:train" else split.held_out
    return images[keep], labels[keep]


def _fit(images: NDArray[np.uint8], image_size: int | None, channels: int | None) -> NDArray[np.uint8]:
    if channels is not None:
        images = convert_channels(images, channels)
    if image_size is not None or images.shape[1] != images.shape[2]:
        if image_size is None:
            raise ValueError(
                f"images of {images.shape[1]}x{images.shape[2]} are not square: pass image_size to "
                "centre-crop and resize them"
            )
        images = resize_square(images, image_size)
    return images


def load_data(
    data: str | os.PathLike[str] = "digits",
    *,
    image_size: int | None = None,
    class_cond: bool = False,
    random_flip: bool = False,
    channels: int | None = None,
    flip_seed: int = 0,
) -> ImageDataset:
    """Load a dataset of square uint8 images as an ``ImageDataset``.

    ``data`` is one of:
    - ``"digits"`` (all 1,797 scikit-learn digits, 8x8, 1 channel, labels 0..9), ``"digits:train"`` or
      ``"digits:held_out"`` (the two parts of ``digits_split()``, seed 0);
    - a folder of ``.png``/``.jpg``/``.jpeg`` images (recursive; ``image_size`` required; RGB unless
      ``channels=1``; with ``class_cond`` the label is the file name before its first underscore);
    - an ``.npz`` file with ``arr_0`` uint8 NHWC images and optional ``arr_1`` labels.

    ``image_size`` None keeps the stored size (8 for digits); otherwise images are centre-cropped and resized.
    ``channels`` None keeps the stored channels (3 for folders); 1 or 3 converts.  ``class_cond`` requires
    labels.  Labels found in the data are kept even without ``class_cond``; a trainer passes them to the
    model only when its own ``class_cond`` is set.  ``random_flip`` flips left-right per item, reproducibly
    from ``flip_seed`` and the epoch (see ``ImageDataset``).
    """
    _check_image_size(image_size)
    if channels is not None and channels not in ALLOWED_CHANNELS:
        raise ValueError(f"channels must be None or one of {ALLOWED_CHANNELS}; got {channels!r}")
    labels: NDArray[np.int64] | None
    class_names: tuple[str, ...] | None = None
    num_classes: int | None = None
    spec = os.fspath(data)
    if not isinstance(spec, str):
        raise ValueError(f"data must be 'digits', a folder path or an .npz path; got {data!r}")
    if spec in DIGITS_SPECS:
        images, labels = _digits(spec)
        images = _fit(images, image_size, channels)
        class_names, num_classes = DIGITS_CLASS_NAMES, len(DIGITS_CLASS_NAMES)
    else:
        path = Path(spec)
        if not path.exists() and spec.startswith("digits:"):
            raise ValueError(f"data {spec!r} is not a known digits set; allowed: {', '.join(DIGITS_SPECS)}")
        if not path.exists():
            raise ValueError(
                f"data {spec!r} does not exist; allowed: {', '.join(DIGITS_SPECS)}, an image folder, "
                "or an .npz file"
            )
        if path.is_dir():
            if image_size is None:
                raise ValueError(f"image_size is required for an image folder (data={spec!r}); got None")
            images, labels, class_names = read_image_folder(
                path,
                image_size=image_size,
                channels=3 if channels is None else channels,
                with_labels=class_cond,
            )
        elif path.suffix.lower() == ".npz":
            images, labels = read_npz(path)
            images = _fit(images, image_size, channels)
        else:
            raise ValueError(
                f"data {spec!r} is a file but not an .npz file; allowed: {', '.join(DIGITS_SPECS)}, an image "
                "folder, or an .npz file"
            )
    if class_cond and labels is None:
        raise ValueError(f"class_cond=True needs labels, but data {spec!r} has none (npz: add arr_1)")
    return ImageDataset(
        images,
        labels,
        num_classes=num_classes,
        class_names=class_names,
        random_flip=random_flip,
        flip_seed=flip_seed,
    )
