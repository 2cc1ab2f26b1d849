"""Streaming readers serve exactly the in-memory batches; ranks split every epoch; bad files are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impl.data.training_source as training_source
from impl.data.lazy_folder import LazyImageFolder
from impl.data.npy import NpyImages
from impl.data.training_source import open_training_data
from impl.train.batches import InMemoryData
from impl.train.stream_batches import IndexedStreamData

CPU = torch.device("cpu")


def _npy(tmp_path: Path, n: int = 10, side: int = 4, labels: bool = True) -> tuple[Path, np.ndarray]:
    images = np.random.default_rng(0).integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    if labels:
        np.save(tmp_path / "labels.npy", np.arange(n) % 3)
    return tmp_path / "images.npy", images


def test_npy_reader_returns_rows_in_the_asked_order(tmp_path: Path) -> None:
    path, images = _npy(tmp_path)
    reader = NpyImages(path)
    order = np.array([7, 2, 3, 4, 2, 9, 0])
    np.testing.assert_array_equal(reader.read(order), images[order])
    assert reader.labels is not None and list(reader.labels) == [i % 3 for i in range(10)]


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.zeros((2, 4, 4, 3), np.float32), "dtype uint8"),
        (np.zeros((2, 4, 4), np.uint8), "shape (N, S, S, C)"),
        (np.zeros((2, 4, 5, 3), np.uint8), "shape (N, S, S, C)"),
    ],
)
def test_npy_of_the_wrong_dtype_or_rank_is_named(tmp_path: Path, array: np.ndarray, needle: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ValueError, match=r"bad\.npy") as info:
        NpyImages(tmp_path / "bad.npy")
    assert needle in str(info.value)


def test_truncated_npy_is_named(tmp_path: Path) -> None:
    path, _ = _npy(tmp_path, labels=False)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"images\.npy"):
        NpyImages(path)


def _row_of(images: np.ndarray, x: torch.Tensor) -> int:
    """Which image of ``images`` the model-range CHW tensor ``x`` is (the random images are distinct)."""
    pixels = ((x.permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    (match,) = np.flatnonzero((images == pixels).all(axis=(1, 2, 3)))
    return int(match)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_npy_stream_equals_memory_bit_for_bit_on_every_rank(tmp_path: Path, num_workers: int) -> None:
    path, images = _npy(tmp_path)
    labels = torch.from_numpy(np.arange(10) % 3)
    memory = InMemoryData(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), labels)
    seen: list[int] = []
    for rank in (0, 1):
        stream = IndexedStreamData(NpyImages(path), num_workers=num_workers)
        for source in (memory, stream):
            source.bind(seed=5, global_batch=4, rank=rank, world_size=2)
        for step in range(5):  # 5 steps x 4 = 20 = two epochs of 10
            (xm, ym), (xs, ys) = memory.fetch(step, CPU), stream.fetch(step, CPU)
            assert torch.equal(xm, xs) and ym is not None and ys is not None and torch.equal(ym, ys)
            seen += [_row_of(images, x) for x in xs]
        stream.close()
    # both ranks together, over two epochs: every example exactly twice
    assert sorted(seen) == sorted(list(range(10)) * 2)


def test_stream_restarted_mid_run_continues_the_same_order(tmp_path: Path) -> None:
    path, _ = _npy(tmp_path, n=7)
    straight = IndexedStreamData(NpyImages(path))
    resumed = IndexedStreamData(NpyImages(path))
    for source in (straight, resumed):
        source.bind(seed=1, global_batch=3, rank=0, world_size=1)
    batches = [straight.fetch(s, CPU)[0] for s in range(6)]
    assert all(torch.equal(resumed.fetch(s, CPU)[0], batches[s]) for s in range(3, 6))


def _image_folder(tmp_path: Path, n: int = 6) -> Path:
    folder = tmp_path / "folder"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        size = 6 + i  # mixed sizes are centre-cropped and resized, as in memory
        Image.fromarray(rng.integers(0, 256, (size, size + 1, 3), dtype=np.uint8)).save(
            folder / f"c{i % 2}_{i}.png"
        )
    return folder


def test_lazy_folder_reads_what_the_in_memory_folder_holds(tmp_path: Path) -> None:
    folder = _image_folder(tmp_path)
    memory = open_training_data(str(folder), image_size=4, class_cond=True, loader="memory")
    lazy = open_training_data(str(folder), image_size=4, class_cond=True, loader="stream")
    assert memory.memory is not None and isinstance(lazy.reader, LazyImageFolder)
    np.testing.assert_array_equal(lazy.reader.read_all(), memory.memory.images)
    assert lazy.reader.labels is not None and memory.memory.labels is not None
    np.testing.assert_array_equal(lazy.reader.labels, memory.memory.labels)
    assert lazy.class_names == memory.class_names == ("c0", "c1")


def test_unreadable_image_in_a_worker_is_reported_by_name(tmp_path: Path) -> None:
    folder = _image_folder(tmp_path)
    (folder / "c1_3.png").write_bytes(b"garbage")
    lazy = open_training_data(str(folder), image_size=4, loader="stream")
    assert lazy.reader is not None
    stream = IndexedStreamData(lazy.reader, num_workers=1)
    stream.bind(seed=0, global_batch=6, rank=0, world_size=1)
    with pytest.raises(ValueError, match=r"c1_3\.png") as info:
        stream.fetch(0, CPU)
    assert "\n" not in str(info.value)


def test_auto_holds_small_sets_in_memory_and_streams_large_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = _npy(tmp_path)
    assert open_training_data(str(path), image_size=4).memory is not None
    assert open_training_data(str(path), image_size=4, loader="stream").reader is not None
    monkeypatch.setattr(training_source, "MEMORY_LIMIT_BYTES", 10 * 4 * 4 * 3 - 1)
    assert open_training_data(str(path), image_size=4).reader is not None
    assert open_training_data(str(path), image_size=4, loader="memory").memory is not None
    with pytest.raises(ValueError, match="image_size is 8"):
        open_training_data(str(path), image_size=8)
    with pytest.raises(ValueError, match="--data_loader stream"):
        open_training_data("digits", image_size=8, loader="stream")


def test_workers_survive_ctrl_c_so_the_trainer_can_save(tmp_path: Path) -> None:
    import multiprocessing
    import os
    import signal
    import time

    path, _ = _npy(tmp_path)
    stream = IndexedStreamData(NpyImages(path), num_workers=1)
    stream.bind(seed=0, global_batch=2, rank=0, world_size=1)
    stream.fetch(0, CPU)
    workers = multiprocessing.active_children()
    assert workers
    for worker in workers:  # what a terminal's Ctrl-C does to the whole process group
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGINT)
    time.sleep(0.5)
    for step in range(1, 12):  # past the prefetched batches: the worker is still serving
        stream.fetch(step, CPU)
    stream.close()
