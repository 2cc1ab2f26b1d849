"""``iddpm prepare``: convert a source (``impl.data.prepare_sources``) into a folder of ``.npy`` or shards.

The folder is written whole into a temporary sibling (``.<name>.tmp-…``) and renamed into place at the end,
so a failed or interrupted run leaves ``out`` as it was.  Layout:
- ``--format npy``: ``images.npy`` (uint8 NHWC), ``labels.npy`` (int64, when the source has labels);
- ``--format shards``: ``shard-000000.tar`` … (``shard_size`` samples each: ``<key>.png`` and ``<key>.cls``);
- both: ``manifest.json`` (``impl.data.manifest``: counts, shape, label names, sha256 per file).
Running again on an ``out`` that already holds a prepared set with the same settings verifies every file
against the manifest instead of rewriting it (a missing, truncated or corrupt file is reported by name);
different settings or other contents need ``overwrite=True``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from impl.data.choices import DEFAULT_SHARD_SIZE, PREPARE_FORMATS
from impl.data.manifest import MANIFEST_NAME, FileEntry, Manifest, file_entry, read_manifest, verify_files
from impl.data.prepare_sources import PrepareSource, open_prepare_source
from impl.data.shards import ShardWriter

__all__ = ["PrepareResult", "prepare"]


@dataclass(frozen=True)
class PrepareResult:
    out: Path
    verified: bool  # True: an existing prepared set was checked, nothing written
    manifest: Manifest


def _settings(source: Path, fmt: str, image_size: int | None, shard_size: int, split: str) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "source": source.name,
        "format": fmt,
        "image_size": image_size,
        "split": split,
    }
    if fmt == "shards":
        settings["shard_size"] = shard_size
    return settings


def _check_args(fmt: str, image_size: int | None, shard_size: int) -> None:
    if fmt not in PREPARE_FORMATS:
        raise ValueError(f"format must be one of {PREPARE_FORMATS}; got {fmt!r}")
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    ):
        raise ValueError(
            f"image_size must be a positive int (or unset: keep the source's size); got {image_size!r}"
        )
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive int (images per shard); got {shard_size!r}")


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="prepare", unit="img", disable=not enabled, dynamic_ncols=True)


def _write_npy(src: PrepareSource, folder: Path, bar: Any) -> dict[str, FileEntry]:
    shape = (src.count, src.image_size, src.image_size, src.channels)
    images = np.lib.format.open_memmap(folder / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
    labels = np.empty(src.count, dtype=np.int64) if src.num_classes is not None else None
    at = 0
    for chunk, chunk_labels in src.chunks():
        if at + chunk.shape[0] > src.count:
            raise ValueError(f"the source delivered more than the {src.count} images it announced")
        images[at : at + chunk.shape[0]] = chunk
        if labels is not None and chunk_labels is not None:
            labels[at : at + chunk.shape[0]] = chunk_labels
        at += chunk.shape[0]
        bar.update(chunk.shape[0])
    images.flush()
    del images
    if at != src.count:
        raise ValueError(f"the source delivered {at} images, not the {src.count} it announced")
    entries = {"images.npy": file_entry(folder / "images.npy", src.count)}
    if labels is not None:
        np.save(folder / "labels.npy", labels)
        entries["labels.npy"] = file_entry(folder / "labels.npy", src.count)
    return entries


def _write_shards(src: PrepareSource, folder: Path, shard_size: int, bar: Any) -> dict[str, FileEntry]:
    writer = ShardWriter(folder, shard_size)
    try:
        for chunk, chunk_labels in src.chunks():
            writer.add(chunk, chunk_labels if src.num_classes is not None else None)
            bar.update(chunk.shape[0])
    finally:
        writer.close()
    return {name: file_entry(folder / name, count) for name, count in writer.written}


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _verify_existing(out: Path, settings: dict[str, Any]) -> Manifest:
    manifest = read_manifest(out)
    differing = sorted(k for k in settings if manifest.settings.get(k) != settings[k])
    if differing:
        was = {k: manifest.settings.get(k) for k in differing}
        asked = {k: settings[k] for k in differing}
        raise ValueError(
            f"out {str(out)!r} holds a set prepared with {was}, not {asked}; pass --overwrite to replace it "
            "or choose another --out"
        )
    verify_files(out, manifest, checksums=True)
    return manifest


def prepare(
    source: Path,
    out: Path,
    *,
    fmt: str = "shards",
    image_size: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    split: str = "train",
    folder_labels: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> PrepareResult:
    """Convert ``source`` into ``out`` (or verify ``out`` when it already holds this prepared set)."""
    _check_args(fmt, image_size, shard_size)
    settings = _settings(source, fmt, image_size, shard_size, split)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {str(out)!r} exists and is not a folder")
    if out.is_dir() and not overwrite:
        if (out / MANIFEST_NAME).is_file():
            return PrepareResult(out, True, _verify_existing(out, settings))
        if any(out.iterdir()):
            raise ValueError(f"out {str(out)!r} exists and is not empty; pass --overwrite to replace it")
    src = open_prepare_source(source, split=split, image_size=image_size, folder_labels=folder_labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        with _progress(src.count, progress) as bar:
            write_npy = fmt == "npy"
            files = _write_npy(src, tmp, bar) if write_npy else _write_shards(src, tmp, shard_size, bar)
        manifest = Manifest(
            format=fmt,
            count=src.count,
            image_shape=[src.image_size, src.image_size, src.channels],
            num_classes=src.num_classes,
            label_names=None if src.label_names is None else list(src.label_names),
            settings=settings | {"kind": src.kind},
            files=files,
        )
        manifest.write(tmp)
        _fsync_folder(tmp)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PrepareResult(out, False, manifest)


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and removed only afterwards."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, old / "previous")
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old / "previous", out)
        raise
    shutil.rmtree(old, ignore_errors=True)
