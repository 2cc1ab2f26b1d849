"""``OrderedImages``: every kind read front to back in stored order, streamed kinds a batch at a time.

The expected images are the arrays written before preparing (an independent path: ``iddpm prepare`` then
the readers must give them back unchanged); the conversion is checked against ``load_data``, which converts
a whole set at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from impl.cli import main
from impl.data import load_data, save_npz_atomic
from impl.data.ordered import OrderedImages
from impl.data.training_source import data_kind, open_training_data

N = 12


def _images() -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (N, 8, 8, 3), dtype=np.uint8)
    return images, rng.integers(0, 5, N).astype(np.int64)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ordered")
    images, labels = _images()
    save_npz_atomic(root / "set.npz", images, labels)
    for fmt, extra in (("npy", []), ("shards", ["--shard_size", "5"])):
        argv = ["prepare", str(root / "set.npz"), "--out", str(root / fmt), "--format", fmt, *extra]
        assert main([*argv, "--progress", "False"]) == 0
    return {"npz": root / "set.npz", "npy": root / "npy", "shards": root / "shards"}


def _collect(data: OrderedImages, count: int, batch: int) -> tuple[list[int], NDArray[np.uint8], list[int]]:
    sizes, images, labels = [], [], []
    for x, y in data.batches(count, batch):
        sizes.append(x.shape[0])
        images.append(x)
        assert y is not None
        labels.extend(y.tolist())
    return sizes, np.concatenate(images), labels


@pytest.mark.parametrize("kind", ["npz", "npy", "shards"])
def test_every_kind_gives_the_stored_images_and_labels_in_order(prepared: dict[str, Path], kind: str) -> None:
    images, labels = _images()
    loader = "memory" if kind == "npz" else "stream"
    source = open_training_data(str(prepared[kind]), image_size=None, loader=loader)
    data = OrderedImages(source)
    assert len(data) == N and data.has_labels and (data.image_size, data.channels) == (8, 3)
    sizes, got, got_labels = _collect(data, 10, 3)
    assert sizes == [3, 3, 3, 1]
    np.testing.assert_array_equal(got, images[:10])
    assert got_labels == labels[:10].tolist()


def test_a_streamed_npy_reads_only_the_batches_rows_in_order(
    prepared: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = open_training_data(str(prepared["npy"]), image_size=None, loader="stream")
    assert source.reader is not None and source.memory is None
    reads: list[list[int]] = []
    original = source.reader.read

    def recording(indices: NDArray[np.int64]) -> NDArray[np.uint8]:
        reads.append(np.asarray(indices).tolist())
        return original(indices)

    monkeypatch.setattr(source.reader, "read", recording)
    monkeypatch.setattr(source.reader, "read_all", lambda: pytest.fail("the whole .npy was read"))
    _collect(OrderedImages(source), 7, 3)
    assert reads == [[0, 1, 2], [3, 4, 5], [6]]


def test_shards_are_opened_only_when_the_reader_reaches_them(prepared: dict[str, Path]) -> None:
    """After opening (counts from the manifest), the third shard disappears: the first 10 images, which
    live in the first two shards of 5, are still read; asking for 11 names the missing shard."""
    images, _ = _images()
    source = open_training_data(str(prepared["shards"]), image_size=None)
    assert source.shards is not None and source.shards.counts == (5, 5, 2)
    data = OrderedImages(source)
    (prepared["shards"] / "shard-000002.tar").rename(prepared["shards"] / "moved.bin")
    try:
        _, got, _ = _collect(data, 10, 4)
        np.testing.assert_array_equal(got, images[:10])
        with pytest.raises(ValueError, match=r"shard-000002\.tar"):
            _collect(data, 11, 4)
    finally:
        (prepared["shards"] / "moved.bin").rename(prepared["shards"] / "shard-000002.tar")


@pytest.mark.parametrize("kind", ["npz", "npy", "shards"])
def test_batchwise_conversion_equals_load_data_converting_the_whole_set(
    prepared: dict[str, Path], kind: str
) -> None:
    whole = load_data(str(prepared["npz"]), image_size=4, channels=1)
    source = open_training_data(str(prepared[kind]), image_size=None)
    data = OrderedImages(source, fit_to=(4, 1))
    assert (data.image_size, data.channels) == (4, 1)
    sizes, got, _ = _collect(data, N, 5)
    assert sizes == [5, 5, 2]
    np.testing.assert_array_equal(got, whole.images)


def test_data_kind_names_each_kind_and_refuses_the_unknown(prepared: dict[str, Path], tmp_path: Path) -> None:
    assert data_kind("digits:held_out") == data_kind(str(prepared["npz"])) == "memory"
    assert data_kind(str(prepared["npy"])) == data_kind(str(prepared["shards"])) == "prepared"
    assert data_kind(str(prepared["npy"] / "images.npy")) == "npy"
    assert data_kind(str(prepared["shards"] / "shard-{000000..000002}.tar")) == "shards"
    (tmp_path / "pictures").mkdir()
    assert data_kind(str(tmp_path / "pictures")) == "folder"
    with pytest.raises(ValueError, match="does not exist or is not a known kind"):
        data_kind(str(tmp_path / "nothing.bin"))


def test_bad_counts_are_refused(prepared: dict[str, Path]) -> None:
    data = OrderedImages(open_training_data(str(prepared["npy"]), image_size=None))
    for count, batch in ((N + 1, 2), (-1, 2), (3, 0)):
        with pytest.raises(ValueError, match="count must be in"):
            data.batches(count, batch)
