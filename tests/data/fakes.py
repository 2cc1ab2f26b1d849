"""Tiny stand-ins for the downloaded archives, in their exact layouts (no download).

CIFAR-10 python: ``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``; each batch a
protocol-2 pickle of a dict with bytes keys (as Python 2 wrote them): ``b"batch_label"``, ``b"labels"`` (list
of int), ``b"data"`` (uint8 (n, 3072), CHW rows), ``b"filenames"``.  Downsampled ImageNet: ``.npz`` with
``data`` uint8 (n, 3·S·S) CHW rows, ``labels`` 1-based, and ``mean`` in the training batches.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

CIFAR_NAMES = [
    b"airplane",
    b"automobile",
    b"bird",
    b"cat",
    b"deer",
    b"dog",
    b"frog",
    b"horse",
    b"ship",
    b"truck",
]


def cifar_images(n: int, seed: int) -> NDArray[np.uint8]:
    """``n`` random 32x32 RGB images (NHWC)."""
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def cifar_batch_bytes(images: NDArray[np.uint8], labels: list[int], name: str) -> bytes:
    rows = images.transpose(0, 3, 1, 2).reshape(images.shape[0], 3072)
    batch = {
        b"batch_label": name.encode(),
        b"labels": labels,
        b"data": np.ascontiguousarray(rows),
        b"filenames": [f"img_{i}.png".encode() for i in range(images.shape[0])],
    }
    return pickle.dumps(batch, protocol=2)


def write_fake_cifar(root: Path, per_batch: int = 4, *, archive: bool = False) -> dict[str, object]:
    """Five training batches and a test batch of ``per_batch`` images; returns the arrays written."""
    files: dict[str, bytes] = {}
    train_images, train_labels = [], []
    for k in range(1, 6):
        images = cifar_images(per_batch, seed=k)
        labels = [(k + i) % 10 for i in range(per_batch)]
        files[f"data_batch_{k}"] = cifar_batch_bytes(images, labels, f"training batch {k} of 5")
        train_images.append(images)
        train_labels += labels
    test_images = cifar_images(per_batch, seed=99)
    test_labels = [i % 10 for i in range(per_batch)]
    files["test_batch"] = cifar_batch_bytes(test_images, test_labels, "testing batch 1 of 1")
    meta = {b"num_cases_per_batch": per_batch, b"label_names": CIFAR_NAMES, b"num_vis": 3072}
    files["batches.meta"] = pickle.dumps(meta, protocol=2)
    root.mkdir(parents=True, exist_ok=True)
    if archive:
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, payload in files.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    else:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(exist_ok=True)
        for name, payload in files.items():
            (folder / name).write_bytes(payload)
    return {
        "train_images": np.concatenate(train_images),
        "train_labels": np.array(train_labels),
        "test_images": test_images,
        "test_labels": np.array(test_labels),
    }


def write_fake_imagenet(
    folder: Path, side: int = 8, per_batch: int = 5, batches: int = 2
) -> dict[str, object]:
    """``train_data_batch_1..K.npz`` and ``val_data.npz`` of ``side``² images; returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    all_images, all_labels = [], []
    for k in range(1, batches + 1):
        images = rng.integers(0, 256, (per_batch, side, side, 3), dtype=np.uint8)
        labels = rng.integers(1, 1001, per_batch)
        rows = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(per_batch, -1))
        np.savez(folder / f"train_data_batch_{k}.npz", data=rows, labels=list(labels), mean=rows.mean(0))
        all_images.append(images)
        all_labels.append(labels)
    val = rng.integers(0, 256, (3, side, side, 3), dtype=np.uint8)
    val_rows = np.ascontiguousarray(val.transpose(0, 3, 1, 2).reshape(3, -1))
    np.savez(folder / "val_data.npz", data=val_rows, labels=[1, 2, 1000])
    return {
        "train_images": np.concatenate(all_images),
        "train_labels": np.concatenate(all_labels),
        "val_images": val,
    }
