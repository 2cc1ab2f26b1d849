"""``manifest.json`` of a prepared data folder: what it holds and a sha256 per file, so it can be verified.

Fields: ``format`` ("npy" or "shards"), ``count`` (images), ``image_shape`` ([S, S, C]), ``num_classes``
and ``label_names`` (null without labels / names), ``settings`` (what ``iddpm prepare`` was asked: source,
split, image_size, shard_size) and ``files``: name → ``{"bytes", "sha256", "count"}`` (count: images in
that file; for ``labels.npy`` the labels).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from impl.atomic import atomic_write

__all__ = ["MANIFEST_NAME", "FileEntry", "Manifest", "file_entry", "read_manifest", "verify_files"]

MANIFEST_NAME = "manifest.json"
FORMATS = ("npy", "shards")
_CHUNK = 1 << 22


@dataclass(frozen=True)
class FileEntry:
    bytes: int
    sha256: str
    count: int


@dataclass
class Manifest:
    format: str
    count: int
    image_shape: list[int]
    num_classes: int | None
    label_names: list[str] | None
    settings: dict[str, Any]
    files: dict[str, FileEntry] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def write(self, folder: Path) -> None:
        atomic_write(folder / MANIFEST_NAME, self.to_json().encode())

    @property
    def has_labels(self) -> bool:
        return self.num_classes is not None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path, count: int) -> FileEntry:
    return FileEntry(bytes=path.stat().st_size, sha256=sha256_of(path), count=count)


def read_manifest(folder: Path) -> Manifest:
    """The manifest of ``folder``; ValueError naming it when it is missing fields or not JSON."""
    path = folder / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text())
        files = {
            str(k): FileEntry(int(v["bytes"]), str(v["sha256"]), int(v["count"]))
            for k, v in raw["files"].items()
        }
        manifest = Manifest(
            format=str(raw["format"]),
            count=int(raw["count"]),
            image_shape=[int(s) for s in raw["image_shape"]],
            num_classes=None if raw["num_classes"] is None else int(raw["num_classes"]),
            label_names=None if raw["label_names"] is None else [str(n) for n in raw["label_names"]],
            settings=dict(raw["settings"]),
            files=files,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"manifest {str(path)!r} is unreadable or incomplete: {err}") from None
    if manifest.format not in FORMATS or len(manifest.image_shape) != 3:
        raise ValueError(
            f"manifest {str(path)!r}: format must be one of {FORMATS} with image_shape [S, S, C]"
        )
    return manifest


def verify_files(folder: Path, manifest: Manifest, *, checksums: bool = True) -> None:
    """Raise ValueError naming the first file that is missing, of the wrong size, or (``checksums``) whose
    sha256 differs from the manifest; also when the per-file counts do not add up to ``count``."""
    for name, entry in sorted(manifest.files.items()):
        path = folder / name
        if not path.is_file():
            raise ValueError(f"{str(path)!r} is listed in {MANIFEST_NAME} but missing")
        size = path.stat().st_size
        if size != entry.bytes:
            raise ValueError(
                f"{str(path)!r} is {size} bytes, {MANIFEST_NAME} says {entry.bytes} (truncated or changed)"
            )
        if checksums and sha256_of(path) != entry.sha256:
            raise ValueError(
                f"{str(path)!r} does not match its sha256 in {MANIFEST_NAME} (corrupt or changed)"
            )
    images = sum(e.count for n, e in manifest.files.items() if n != "labels.npy")
    if images != manifest.count:
        raise ValueError(
            f"{MANIFEST_NAME} in {str(folder)!r}: files hold {images} images, count says {manifest.count}"
        )
