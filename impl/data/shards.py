"""WebDataset tar shards of images: naming a shard list, reading samples, writing shards.

A shard is a plain tar file whose members come in groups sharing a key: ``<key>.png`` (the image, PNG) and,
for labelled sets, ``<key>.cls`` (the class id as ASCII digits).  A shard list is given as
- a folder: every ``*.tar`` in it, sorted by name (with the folder's ``manifest.json`` when there is one);
- a brace pattern, local or remote: ``shards/shard-{000000..000127}.tar``, ``https://host/s-{0..9}.tar``;
- a text file ending in ``.txt``: one path or URL per line (blank lines and ``#`` comments ignored);
- one ``.tar`` path or URL.
URLs are opened with ``webdataset.gopen`` (``http(s)://`` through curl, ``pipe:CMD``, local files).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

__all__ = [
    "IMAGE_SUFFIX",
    "LABEL_SUFFIX",
    "ShardWriter",
    "count_shard",
    "decode_png",
    "encode_png",
    "expand_shard_spec",
    "iter_shard",
    "looks_like_shards",
]

IMAGE_SUFFIX = ".png"
LABEL_SUFFIX = ".cls"
_REMOTE = ("http://", "https://", "pipe:", "gs://", "s3://")


def looks_like_shards(spec: str) -> bool:
    """Whether ``spec`` names tar shards (a pattern, a URL, a ``.tar`` or a ``.txt`` list)."""
    return "{" in spec or spec.startswith(_REMOTE) or spec.endswith((".tar", ".txt"))


def expand_shard_spec(spec: str) -> list[str]:
    """The shard paths or URLs ``spec`` names, in order; ValueError when it names none."""
    from webdataset.shardlists import expand_urls

    path = Path(spec)
    if not spec.startswith(_REMOTE) and path.is_dir():
        shards = sorted(str(p) for p in path.glob("*.tar"))
        if not shards:
            raise ValueError(f"shard folder {spec!r} holds no .tar files")
        return shards
    if spec.endswith(".txt"):
        if not path.is_file():
            raise ValueError(f"shard list {spec!r} does not exist")
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        shards = [ln for ln in lines if ln and not ln.startswith("#")]
        if not shards:
            raise ValueError(f"shard list {spec!r} names no shards")
        return shards
    shards = list(expand_urls(spec)) if "{" in spec else [spec]
    if not shards:
        raise ValueError(f"shard pattern {spec!r} names no shards")
    return shards


def _open(url: str) -> IO[bytes]:
    if not url.startswith(_REMOTE) and not os.path.isfile(url):
        raise ValueError(f"shard {url!r} does not exist")
    import webdataset

    try:
        handle: IO[bytes] = webdataset.gopen(url, "rb")
    except Exception as err:  # gopen raises per scheme; all mean "cannot open this shard"
        raise ValueError(f"shard {url!r} cannot be opened: {err}") from None
    return handle


def decode_png(raw: bytes, where: str) -> NDArray[np.uint8]:
    """A PNG's pixels as uint8 HWC (C = 1 for greyscale, else 3)."""
    try:
        with Image.open(io.BytesIO(raw)) as picture:
            mode = "L" if picture.mode in ("L", "I;16", "1") else "RGB"
            arr = np.asarray(picture.convert(mode), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"{where}: not a readable PNG image: {err}") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def encode_png(image_hwc: NDArray[np.uint8]) -> bytes:
    picture = Image.fromarray(image_hwc[:, :, 0] if image_hwc.shape[2] == 1 else image_hwc)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def iter_shard(
    url: str, *, decode: bool = True, skip: int = 0
) -> Iterator[tuple[str, NDArray[np.uint8] | None, int | None]]:
    """``(key, image uint8 HWC or None when not decoding, label or None)`` per sample, in stored order,
    leaving out the first ``skip`` samples (read past, never decoded).

    A missing, truncated or corrupt shard raises ValueError naming it."""
    handle = _open(url)
    key: str | None = None
    image: NDArray[np.uint8] | None = None
    raw: bytes | None = None
    label: int | None = None
    seen = 0
    try:
        with tarfile.open(fileobj=handle, mode="r|") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                stem, _, suffix = member.name.rpartition(".")
                if stem != key:
                    if key is not None:
                        seen += 1
                        if seen > skip:
                            yield _sample(url, key, raw, image, label)
                    key, raw, image, label = stem, None, None, None
                data = archive.extractfile(member)
                payload = data.read() if data is not None else b""
                if "." + suffix == IMAGE_SUFFIX:
                    raw = payload
                    if decode and seen >= skip:
                        image = decode_png(payload, f"shard {url!r} member {member.name!r}")
                elif "." + suffix == LABEL_SUFFIX:
                    label = _parse_label(payload, url, member.name)
            if key is not None and seen + 1 > skip:
                yield _sample(url, key, raw, image, label)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(f"shard {url!r} is truncated or corrupt: {err}") from None
    finally:
        handle.close()


def _parse_label(payload: bytes, url: str, name: str) -> int:
    text = payload.decode("ascii", errors="replace").strip()
    if not text.isdigit():
        raise ValueError(
            f"shard {url!r} member {name!r}: a label must be a non-negative integer; got {text!r}"
        )
    return int(text)


def _sample(
    url: str, key: str, raw: bytes | None, image: NDArray[np.uint8] | None, label: int | None
) -> tuple[str, NDArray[np.uint8] | None, int | None]:
    if raw is None:
        raise ValueError(f"shard {url!r}: sample {key!r} has no {IMAGE_SUFFIX} member")
    return key, image, label


def count_shard(url: str) -> int:
    """The number of samples in a shard (reads it without decoding)."""
    return sum(1 for _ in iter_shard(url, decode=False))


def _add(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mtime = 0
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(payload))


class ShardWriter:
    """Writes samples into ``<folder>/shard-NNNNNN.tar`` files of ``shard_size`` samples each (the last may
    hold fewer).  Sample ``i`` (counting from 0 over all shards) has key ``i`` in 9 digits.  The tar headers
    carry no time or owner, so the same images give the same bytes."""

    def __init__(self, folder: Path, shard_size: int) -> None:
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise ValueError(f"shard_size must be a positive int; got {shard_size!r}")
        self.folder = folder
        self.shard_size = shard_size
        self.written: list[tuple[str, int]] = []
        self._archive: tarfile.TarFile | None = None
        self._in_shard = 0
        self._next_key = 0

    def _roll(self) -> tarfile.TarFile:
        if self._archive is not None and self._in_shard < self.shard_size:
            return self._archive
        self.close()
        name = f"shard-{len(self.written):06d}.tar"
        # kept open across add() calls, closed in close()
        self._archive = tarfile.open(  # noqa: SIM115
            self.folder / name, mode="w", format=tarfile.USTAR_FORMAT
        )
        self.written.append((name, 0))
        self._in_shard = 0
        return self._archive

    def add(self, images: NDArray[np.uint8], labels: NDArray[np.int64] | None) -> None:
        for i in range(images.shape[0]):
            archive = self._roll()
            key = f"{self._next_key:09d}"
            _add(archive, key + IMAGE_SUFFIX, encode_png(images[i]))
            if labels is not None:
                _add(archive, key + LABEL_SUFFIX, str(int(labels[i])).encode("ascii"))
            self._next_key += 1
            self._in_shard += 1
            name, count = self.written[-1]
            self.written[-1] = (name, count + 1)

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None
