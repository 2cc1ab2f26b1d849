"""What ``iddpm prepare`` reads: an image folder, an ``.npz`` (``arr_0``/``arr_1``), the CIFAR-10 python
archive or folder, or downsampled-ImageNet ``.npz`` batches -- each as chunks of uint8 NHWC images at the
target size (resized as the original data loader did, ``impl.data.images.resize_like_original``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from impl.data.choices import SPLITS
from impl.data.cifar import is_cifar_source, read_cifar
from impl.data.folder import class_name_of, list_image_files
from impl.data.imagenet64 import (
    IMAGENET_CLASSES,
    imagenet_batch_files,
    imagenet_batch_size,
    is_imagenet_batch,
    read_imagenet_rows,
    rows_to_nhwc,
)
from impl.data.images import hwc_array, pil_image, resize_like_original
from impl.data.npz import read_npz

__all__ = ["SPLITS", "Chunk", "PrepareSource", "open_prepare_source"]

FOLDER_CHUNK = 256

Chunk = tuple[NDArray[np.uint8], NDArray[np.int64] | None]


@dataclass(frozen=True)
class PrepareSource:
    """``count`` images of ``image_size``² x ``channels`` delivered by ``chunks()`` in a fixed order."""

    kind: str
    count: int
    image_size: int
    channels: int
    label_names: tuple[str, ...] | None
    num_classes: int | None
    chunks: Callable[[], Iterator[Chunk]]


def fit_images(images: NDArray[np.uint8], image_size: int | None, name: str) -> NDArray[np.uint8]:
    """``images`` at ``image_size`` (unchanged when they already are; ``None``: they must be square)."""
    h, w = images.shape[1], images.shape[2]
    if image_size is None:
        if h != w:
            raise ValueError(f"{name}: images are {h}x{w}, not square; pass --image_size to resize and crop")
        return images
    if h == w == image_size:
        return images
    out = np.empty((images.shape[0], image_size, image_size, images.shape[3]), dtype=np.uint8)
    for i in range(images.shape[0]):
        out[i] = hwc_array(resize_like_original(pil_image(images[i]), image_size))
    return out


def _array_source(
    kind: str,
    images: NDArray[np.uint8],
    labels: NDArray[np.int64] | None,
    image_size: int | None,
    name: str,
    label_names: tuple[str, ...] | None = None,
    num_classes: int | None = None,
) -> PrepareSource:
    first = fit_images(images[:1], image_size, name)
    size = int(first.shape[1])
    if labels is not None and num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0

    def chunks() -> Iterator[Chunk]:
        for lo in range(0, images.shape[0], FOLDER_CHUNK):
            part = None if labels is None else labels[lo : lo + FOLDER_CHUNK]
            yield fit_images(images[lo : lo + FOLDER_CHUNK], size, name), part

    return PrepareSource(
        kind, int(images.shape[0]), size, int(images.shape[3]), label_names, num_classes, chunks
    )


def _decode(path: Path) -> Image.Image:
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"cannot read image file {str(path)!r}: {err}") from None


def _folder_source(folder: Path, image_size: int | None, with_labels: bool) -> PrepareSource:
    files = list_image_files(folder)
    labels: NDArray[np.int64] | None = None
    names: tuple[str, ...] | None = None
    if with_labels:
        classes = [class_name_of(p) for p in files]
        names = tuple(sorted(set(classes)))
        ids = {n: k for k, n in enumerate(names)}
        labels = np.array([ids[c] for c in classes], dtype=np.int64)
    size = image_size
    if size is None:
        first = _decode(files[0])
        if first.size[0] != first.size[1]:
            raise ValueError(
                f"image {str(files[0])!r} is {first.size[0]}x{first.size[1]}, not square; pass --image_size"
            )
        size = first.size[0]

    def one(path: Path) -> NDArray[np.uint8]:
        picture = _decode(path)
        if image_size is None:
            if picture.size != (size, size):
                raise ValueError(
                    f"image {str(path)!r} is {picture.size[0]}x{picture.size[1]}, the folder's first image "
                    f"{size}x{size}: mixed sizes need --image_size"
                )
            return hwc_array(picture)
        return hwc_array(resize_like_original(picture, size))

    def chunks() -> Iterator[Chunk]:
        for lo in range(0, len(files), FOLDER_CHUNK):
            batch = files[lo : lo + FOLDER_CHUNK]
            part = None if labels is None else labels[lo : lo + FOLDER_CHUNK]
            yield np.stack([one(p) for p in batch]), part

    return PrepareSource("folder", len(files), size, 3, names, None if names is None else len(names), chunks)


def _imagenet_source(files: list[Path], image_size: int | None) -> PrepareSource:
    sizes = [imagenet_batch_size(path) for path in files]  # headers only
    sides = {side for _, side in sizes}
    if len(sides) != 1:
        raise ValueError(f"ImageNet batches of different sizes {sorted(sides)}: {[str(p) for p in files]}")
    native = sides.pop()
    size = native if image_size is None else image_size
    step = 4 * FOLDER_CHUNK

    def chunks() -> Iterator[Chunk]:
        for path in files:
            rows, labels, side = read_imagenet_rows(path)  # one batch file in memory at a time
            for lo in range(0, rows.shape[0], step):
                images = rows_to_nhwc(rows[lo : lo + step], side)
                yield fit_images(images, size, str(path)), labels[lo : lo + step]

    return PrepareSource("imagenet64", sum(n for n, _ in sizes), size, 3, None, IMAGENET_CLASSES, chunks)


def open_prepare_source(
    source: Path, *, split: str = "train", image_size: int | None = None, folder_labels: bool = False
) -> PrepareSource:
    """Recognise ``source`` and describe what it holds; ValueError naming it when it is none of the kinds."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    if image_size is not None and (isinstance(image_size, bool) or image_size < 1):
        raise ValueError(f"image_size must be a positive int; got {image_size!r}")
    if not source.exists():
        raise ValueError(f"source {str(source)!r} does not exist")
    name = str(source)
    if is_cifar_source(source):
        cifar = read_cifar(source, split)
        return _array_source(
            "cifar10", cifar.images, cifar.labels, image_size, name, cifar.label_names, len(cifar.label_names)
        )
    if source.is_dir():
        batches = imagenet_batch_files(source, split)
        if batches:
            return _imagenet_source(batches, image_size)
        return _folder_source(source, image_size, folder_labels)
    if is_imagenet_batch(source):
        return _imagenet_source([source], image_size)
    if source.suffix.lower() == ".npz":
        images, labels = read_npz(source)
        return _array_source("npz", images, labels, image_size, name)
    raise ValueError(
        f"source {name!r} is none of: an image folder, an .npz, a CIFAR-10 archive/folder, or "
        "downsampled-ImageNet .npz batches"
    )
