"""Which reader a training run uses for ``--data``, and whether it holds the set in memory or streams it.

``--data`` may be: ``digits`` / ``digits:train`` / ``digits:held_out``; an ``.npz`` (``arr_0``/``arr_1``); an
image folder; a ``.npy`` of uint8 NHWC images (labels beside it, see ``impl.data.npy``); a folder written by
``iddpm prepare`` (its ``manifest.json`` says ``npy`` or ``shards``); or a tar shard list (a folder of
``.tar``, a brace pattern, a ``.txt`` list of paths/URLs, see ``impl.data.shards``).

``data_loader="auto"`` holds a set in memory when its decoded pixels take at most ``MEMORY_LIMIT_BYTES``
(1 GiB) and streams it otherwise; ``"memory"`` and ``"stream"`` force the choice.  The digits and ``.npz``
files are always read into memory; tar shards stream unless ``"memory"`` is asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from impl.data.choices import DATA_LOADERS, MEMORY_LIMIT_BYTES
from impl.data.dataset import ImageDataset
from impl.data.folder import list_image_files
from impl.data.lazy_folder import LazyImageFolder
from impl.data.load import DIGITS_SPECS, load_data
from impl.data.manifest import MANIFEST_NAME, read_manifest, verify_files
from impl.data.npy import NpyImages
from impl.data.shard_set import ShardSet, iter_set_samples, open_shard_set
from impl.data.shards import looks_like_shards

__all__ = ["DATA_LOADERS", "MEMORY_LIMIT_BYTES", "TrainingData", "data_kind", "open_training_data"]


@dataclass(frozen=True)
class TrainingData:
    """Exactly one of ``memory`` (an ``ImageDataset``), ``reader`` (``.npy`` / lazy folder) or ``shards``."""

    kind: str
    image_size: int
    channels: int
    num_classes: int | None
    class_names: tuple[str, ...] | None
    memory: ImageDataset | None = None
    reader: NpyImages | LazyImageFolder | None = None
    shards: ShardSet | None = None


def _in_memory(kind: str, dataset: ImageDataset) -> TrainingData:
    return TrainingData(
        kind, dataset.image_size, dataset.channels, dataset.num_classes, dataset.class_names, dataset
    )


def _decide(loader: str, nbytes: int) -> bool:
    """True: hold in memory."""
    return loader == "memory" or (loader == "auto" and nbytes <= MEMORY_LIMIT_BYTES)


def _check_fits(
    spec: str, size: int, channels: int, image_size: int | None, want_channels: int | None
) -> None:
    if image_size is not None and size != image_size:
        raise ValueError(
            f"data {spec!r} holds {size}x{size} images but image_size is {image_size}; prepare it at that "
            f"size (iddpm prepare --image_size {image_size}) or pass --image_size {size}"
        )
    if want_channels is not None and channels != want_channels:
        raise ValueError(f"data {spec!r} holds {channels}-channel images but in_channels is {want_channels}")


def _npy(
    spec: str, path: Path, loader: str, names: tuple[str, ...] | None, classes: int | None
) -> TrainingData:
    reader = NpyImages(path)
    labels = reader.labels
    if labels is not None and classes is None:
        classes = int(labels.max()) + 1 if labels.size else None
    if not _decide(loader, reader.nbytes):
        _, s, _, c = reader.shape
        return TrainingData("npy", s, c, None if labels is None else classes, names, reader=reader)
    dataset = ImageDataset(
        reader.read_all(),
        labels,
        num_classes=classes if labels is not None else None,
        class_names=names if labels is not None else None,
    )
    return _in_memory("npy", dataset)


def _shards_in_memory(shards: ShardSet) -> ImageDataset:
    images = np.empty((len(shards), *shards.image_shape), dtype=np.uint8)
    labels: NDArray[np.int64] | None = np.empty(len(shards), dtype=np.int64) if shards.has_labels else None
    for i, (image, label) in enumerate(iter_set_samples(shards)):
        images[i] = image
        if labels is not None and label is not None:
            labels[i] = label
    return ImageDataset(images, labels, num_classes=shards.num_classes, class_names=shards.label_names)


def _shards(spec: str, loader: str) -> TrainingData:
    shards = open_shard_set(spec)
    s, _, c = shards.image_shape
    if loader == "memory":
        return _in_memory("shards", _shards_in_memory(shards))
    return TrainingData("shards", s, c, shards.num_classes, shards.label_names, shards=shards)


def data_kind(data: str) -> str:
    """Which kind of set ``data`` names: ``"memory"`` (the digits, an ``.npz``), ``"prepared"`` (a folder
    with a ``manifest.json``), ``"npy"``, ``"shards"`` or ``"folder"`` (an image folder); ValueError naming
    ``data`` and the allowed kinds when it is none of them."""
    spec = os.fspath(data)
    path = Path(spec)
    if spec in DIGITS_SPECS or (path.is_file() and path.suffix.lower() == ".npz"):
        return "memory"
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return "prepared"
    if path.is_file() and path.suffix.lower() == ".npy":
        return "npy"
    if path.is_dir():
        return "shards" if any(path.glob("*.tar")) else "folder"
    if looks_like_shards(spec):
        return "shards"
    raise ValueError(
        f"data {spec!r} does not exist or is not a known kind; allowed: {', '.join(DIGITS_SPECS)}, "
        "an .npz, an image folder, a .npy, a prepared folder, or tar shards (folder, brace pattern, "
        ".txt list)"
    )


def open_training_data(
    data: str,
    *,
    image_size: int | None,
    class_cond: bool = False,
    channels: int | None = None,
    loader: str = "auto",
) -> TrainingData:
    """Open ``data`` for training (see the module docstring); ValueError naming the file when it is bad."""
    if loader not in DATA_LOADERS:
        raise ValueError(f"data_loader must be one of {DATA_LOADERS}; got {loader!r}")
    spec = os.fspath(data)
    path = Path(spec)
    kind = data_kind(spec)
    source: TrainingData
    if kind == "memory":
        if loader == "stream":
            raise ValueError(
                f"data {spec!r} is read into memory; --data_loader stream needs a folder, .npy or shards"
            )
        source = _in_memory(
            "memory", load_data(spec, image_size=image_size, class_cond=class_cond, channels=channels)
        )
        return source
    if kind == "folder":
        if image_size is None:
            raise ValueError(f"image_size is required for an image folder (data={spec!r}); got None")
        want = 3 if channels is None else channels
        nbytes = len(list_image_files(path)) * image_size * image_size * want
        if _decide(loader, nbytes):
            dataset = load_data(spec, image_size=image_size, class_cond=class_cond, channels=want)
            return _in_memory("folder", dataset)
        lazy = LazyImageFolder(path, image_size=image_size, channels=want, with_labels=class_cond)
        classes = None if lazy.class_names is None else len(lazy.class_names)
        return TrainingData("folder", image_size, want, classes, lazy.class_names, reader=lazy)
    manifest = read_manifest(path) if kind == "prepared" else None
    if manifest is not None and manifest.format == "npy":
        verify_files(path, manifest, checksums=False)
        names = None if manifest.label_names is None else tuple(manifest.label_names)
        source = _npy(spec, path / "images.npy", loader, names, manifest.num_classes)
    elif kind == "npy":
        source = _npy(spec, path, loader, None, None)
    else:  # shards: a prepared shard folder, a folder of .tar, a pattern, a .txt list, one .tar or URL
        source = _shards(spec, loader)
    _check_fits(spec, source.image_size, source.channels, image_size, channels)
    if class_cond and source.num_classes is None:
        raise ValueError(f"class_cond=True needs labels, but data {spec!r} has none")
    return source
