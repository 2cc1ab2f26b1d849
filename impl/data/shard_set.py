"""A list of tar shards with what training needs to know up front: samples per shard, image shape, labels.

From a folder written by ``iddpm prepare --format shards`` the counts come from its ``manifest.json``
(checked against the files' sizes); from any other shard list each shard is read once, without decoding,
to count it (costly for remote shards: prefer a prepared folder, or keep its manifest beside the list).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from impl.data.manifest import MANIFEST_NAME, read_manifest, verify_files
from impl.data.shards import expand_shard_spec, iter_shard

__all__ = ["ShardSet", "iter_set_samples", "open_shard_set"]


@dataclass(frozen=True)
class ShardSet:
    urls: tuple[str, ...]
    counts: tuple[int, ...]
    image_shape: tuple[int, int, int]
    num_classes: int | None
    label_names: tuple[str, ...] | None

    def __len__(self) -> int:
        return sum(self.counts)

    @property
    def has_labels(self) -> bool:
        return self.num_classes is not None


def _from_manifest(folder: Path) -> ShardSet:
    manifest = read_manifest(folder)
    if manifest.format != "shards":
        raise ValueError(f"{str(folder / MANIFEST_NAME)!r} describes format {manifest.format!r}, not shards")
    verify_files(folder, manifest, checksums=False)
    names = sorted(manifest.files)
    on_disk = sorted(p.name for p in folder.glob("*.tar"))
    if on_disk != names:
        extra = sorted(set(on_disk) - set(names))
        raise ValueError(
            f"shard folder {str(folder)!r} holds shards its {MANIFEST_NAME} does not list: {extra}"
        )
    shape = manifest.image_shape
    return ShardSet(
        urls=tuple(str(folder / n) for n in names),
        counts=tuple(manifest.files[n].count for n in names),
        image_shape=(shape[0], shape[1], shape[2]),
        num_classes=manifest.num_classes,
        label_names=None if manifest.label_names is None else tuple(manifest.label_names),
    )


def _scanned(urls: list[str]) -> ShardSet:
    counts: list[int] = []
    top = -1
    labelled: bool | None = None
    shape: tuple[int, int, int] | None = None
    for url in urls:
        n = 0
        for _, image, label in iter_shard(url, decode=shape is None):
            if image is not None:
                shape = (int(image.shape[0]), int(image.shape[1]), int(image.shape[2]))
            if labelled is None:
                labelled = label is not None
            elif labelled != (label is not None):
                raise ValueError(f"shard {url!r} mixes labelled and unlabelled samples")
            top = max(top, -1 if label is None else label)
            n += 1
        if n == 0:
            raise ValueError(f"shard {url!r} holds no samples")
        counts.append(n)
    assert shape is not None
    return ShardSet(tuple(urls), tuple(counts), shape, (top + 1) if labelled else None, None)


def open_shard_set(spec: str) -> ShardSet:
    """The shards ``spec`` names (see ``impl.data.shards``); ValueError naming a missing or bad shard."""
    if os.path.isdir(spec) and (Path(spec) / MANIFEST_NAME).is_file():
        shard_set = _from_manifest(Path(spec))
    else:
        shard_set = _scanned(expand_shard_spec(spec))
    side_h, side_w, _ = shard_set.image_shape
    if side_h != side_w:
        raise ValueError(f"shards {spec!r} hold {side_h}x{side_w} images; training needs square images")
    return shard_set


def iter_set_samples(shards: ShardSet) -> Iterator[tuple[NDArray[np.uint8], int | None]]:
    """``(image uint8 HWC, label or None)`` for every sample of ``shards``, shard after shard, each in stored
    order; a sample of another shape than the set's, or without a label in a labelled set, raises ValueError
    naming its shard.  Shards are opened only when the reader reaches them."""
    for url in shards.urls:
        for key, image, label in iter_shard(url):
            if image is None or image.shape != shards.image_shape:
                got = None if image is None else image.shape
                raise ValueError(f"shard {url!r} sample {key!r} is {got}, not a {shards.image_shape} image")
            if shards.has_labels and label is None:
                raise ValueError(f"shard {url!r} sample {key!r} has no label in a labelled shard set")
            yield image, label
