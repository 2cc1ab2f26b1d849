"""The CIFAR-10 python version (``cifar-10-python.tar.gz``), read without trusting its pickles.

Each batch file (``data_batch_1`` … ``data_batch_5``: the 50,000 training images; ``test_batch``: the 10,000
test images) is a pickled dict with ``data``: a uint8 array ``(n, 3072)``, one row per image holding the
1,024 red, then green, then blue pixels of a 32x32 picture row by row (CHW), and ``labels``: n ints in 0..9.
``batches.meta`` holds ``label_names`` (10 names).  The files are pickles, so they are read with an
unpickler that resolves only the few numpy names an array needs; anything else is refused.
"""

from __future__ import annotations

import importlib
import io
import pickle
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["CIFAR_SPLITS", "CifarSplit", "is_cifar_source", "read_cifar"]

CIFAR_SPLITS = ("train", "test")
CIFAR_SIDE = 32
_ROW = 3 * CIFAR_SIDE * CIFAR_SIDE
_TRAIN_FILE = re.compile(r"^data_batch_(\d+)$")

# (module, name) pairs a pickled numpy array refers to; everything else is refused.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("multiarray", "scalar"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
}


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What a protocol-2 pickle written by Python 3 calls to rebuild ``bytes`` (``_codecs.encode``), limited
    to that one use: a ``str`` encoded as latin-1."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refusing _codecs.encode other than str -> latin-1 bytes")
    return text.encode("latin1")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds only builtin containers, strings, numbers and numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        where, attr = target
        if where == "numpy":
            return getattr(np, attr)
        try:
            return getattr(importlib.import_module("numpy._core.multiarray"), attr)
        except ImportError:  # numpy < 2
            return getattr(importlib.import_module("numpy.core.multiarray"), attr)


def _unpickle(raw: bytes, name: str) -> dict[str, Any]:
    try:
        value = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # a corrupt pickle raises many types; all mean "not a CIFAR batch"
        raise ValueError(f"CIFAR file {name!r} is not a readable CIFAR-10 pickle: {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"CIFAR file {name!r} must hold a dict; got {type(value).__name__}")
    return {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in value.items()}


def _batch_arrays(raw: bytes, name: str) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    batch = _unpickle(raw, name)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"CIFAR file {name!r}: 'data' must be a uint8 array (n, {_ROW}); got {got}")
    label_array = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if label_array.shape != (data.shape[0],) or (label_array.size and not label_array.min() >= 0):
        raise ValueError(f"CIFAR file {name!r}: 'labels' must list one class id 0..9 per image")
    if label_array.size and label_array.max() > 9:
        raise ValueError(f"CIFAR file {name!r}: 'labels' must be in 0..9; got {int(label_array.max())}")
    images = data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), label_array


def _label_names(raw: bytes, name: str) -> tuple[str, ...]:
    names = _unpickle(raw, name).get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise ValueError(f"CIFAR file {name!r}: 'label_names' must list the 10 class names")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


@dataclass(frozen=True)
class CifarSplit:
    """One split: uint8 NHWC images ``(n, 32, 32, 3)``, int64 labels, the 10 class names."""

    images: NDArray[np.uint8]
    labels: NDArray[np.int64]
    label_names: tuple[str, ...]


def _wanted(names: list[str], split: str) -> list[str]:
    if split == "test":
        return [n for n in names if n == "test_batch"]
    return sorted((n for n in names if _TRAIN_FILE.match(n)), key=lambda n: int(n.rsplit("_", 1)[1]))


def _files_of(source: Path) -> dict[str, bytes]:
    """Base name → bytes of the CIFAR files in an archive or a folder."""
    out: dict[str, bytes] = {}
    if source.is_dir():
        folder = source / "cifar-10-batches-py" if (source / "cifar-10-batches-py").is_dir() else source
        for path in sorted(folder.iterdir()):
            if path.is_file() and (
                path.name in ("batches.meta", "test_batch") or _TRAIN_FILE.match(path.name)
            ):
                out[path.name] = path.read_bytes()
        return out
    try:
        with tarfile.open(source, "r:*") as archive:
            for member in archive.getmembers():
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and (base in ("batches.meta", "test_batch") or _TRAIN_FILE.match(base)):
                    handle = archive.extractfile(member)
                    if handle is not None:
                        out[base] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f"CIFAR archive {str(source)!r} is not a readable tar archive: {err}") from None
    return out


def is_cifar_source(source: Path) -> bool:
    """A ``cifar-10-python.tar.gz``-like archive, or a folder holding ``data_batch_*`` / ``test_batch``."""
    if source.is_file():
        return source.name.endswith((".tar.gz", ".tgz", ".tar")) and "cifar" in source.name.lower()
    folder = source / "cifar-10-batches-py" if (source / "cifar-10-batches-py").is_dir() else source
    return (folder / "test_batch").is_file() or (folder / "data_batch_1").is_file()


def read_cifar(source: Path, split: str = "train") -> CifarSplit:
    """The ``split`` ("train": data_batch_1..5, "test": test_batch) of a CIFAR-10 archive or folder."""
    if split not in CIFAR_SPLITS:
        raise ValueError(f"split must be one of {CIFAR_SPLITS}; got {split!r}")
    files = _files_of(source)
    names = _wanted(sorted(files), split)
    if not names:
        want = "test_batch" if split == "test" else "data_batch_1 … data_batch_5"
        raise ValueError(f"CIFAR source {str(source)!r} holds no {want} for split {split!r}")
    if "batches.meta" not in files:
        raise ValueError(f"CIFAR source {str(source)!r} lacks batches.meta (the label names)")
    label_names = _label_names(files["batches.meta"], f"{source}:batches.meta")
    parts = [_batch_arrays(files[n], f"{source}:{n}") for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return CifarSplit(images=images, labels=labels, label_names=label_names)
