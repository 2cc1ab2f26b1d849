"""CIFAR-10 pickles and downsampled-ImageNet batches: layout, labels, safe unpickling, bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from impl.cli import main
from impl.data.cifar import read_cifar
from impl.data.imagenet64 import read_imagenet_batch
from impl.data.prepare import prepare
from tests.data.fakes import (
    CIFAR_NAMES,
    cifar_batch_bytes,
    cifar_images,
    write_fake_cifar,
    write_fake_imagenet,
)


@pytest.mark.parametrize("archive", [False, True])
def test_cifar_train_and_test_splits_keep_pixels_labels_and_names(tmp_path: Path, archive: bool) -> None:
    written = write_fake_cifar(tmp_path, per_batch=3, archive=archive)
    source = tmp_path / "cifar-10-python.tar.gz" if archive else tmp_path
    train = read_cifar(source, "train")
    np.testing.assert_array_equal(train.images, written["train_images"])  # batches 1..5 in order
    np.testing.assert_array_equal(train.labels, written["train_labels"])
    assert train.label_names == tuple(n.decode() for n in CIFAR_NAMES)
    test = read_cifar(source, "test")
    np.testing.assert_array_equal(test.images, written["test_images"])
    np.testing.assert_array_equal(test.labels, written["test_labels"])


def test_cifar_rows_are_red_then_green_then_blue_planes(tmp_path: Path) -> None:
    image = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    image[0, 0, 1] = (10, 20, 30)  # row 0, column 1
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(tmp_path, per_batch=1)
    raw = cifar_batch_bytes(image, [3], "test")
    row = pickle.loads(raw)[b"data"][0]
    assert (row[1], row[1024 + 1], row[2048 + 1]) == (10, 20, 30)  # the layout the fake writes
    (folder / "test_batch").write_bytes(raw)
    assert tuple(read_cifar(tmp_path, "test").images[0, 0, 1]) == (10, 20, 30)


def test_cifar_pickle_with_a_foreign_global_is_refused(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path, per_batch=1)

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.getenv, ("HOME",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch.*refusing to load global"):
        read_cifar(tmp_path, "test")


def test_cifar_batch_of_the_wrong_layout_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_fake_cifar(tmp_path, per_batch=2)
    bad = {b"data": cifar_images(2, 0).reshape(2, -1)[:, :100].copy(), b"labels": [0, 1]}
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(bad, protocol=2))
    assert main(["prepare", str(tmp_path), "--out", str(tmp_path / "out"), "--progress", "False"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data_batch_3" in err[0] and "(n, 3072)" in err[0]
    assert not (tmp_path / "out").exists()


def test_cifar_to_npy_through_the_cli(tmp_path: Path) -> None:
    written = write_fake_cifar(tmp_path, per_batch=2, archive=True)
    out = tmp_path / "cifar_npy"
    argv = ["prepare", str(tmp_path / "cifar-10-python.tar.gz"), "--out", str(out), "--format", "npy"]
    assert main([*argv, "--progress", "False"]) == 0
    np.testing.assert_array_equal(np.load(out / "images.npy"), written["train_images"])
    np.testing.assert_array_equal(np.load(out / "labels.npy"), written["train_labels"])
    manifest = (out / "manifest.json").read_text()
    assert '"airplane"' in manifest and '"count": 10' in manifest


def test_imagenet_batches_are_chw_rows_with_one_based_labels(tmp_path: Path) -> None:
    written = write_fake_imagenet(tmp_path, side=8, per_batch=4, batches=2)
    images, labels = read_imagenet_batch(tmp_path / "train_data_batch_1.npz")
    np.testing.assert_array_equal(images, written["train_images"][:4])
    np.testing.assert_array_equal(labels, written["train_labels"][:4] - 1)
    result = prepare(tmp_path, tmp_path / "in64", fmt="npy", progress=False)
    assert result.manifest.count == 8 and result.manifest.num_classes == 1000
    np.testing.assert_array_equal(np.load(tmp_path / "in64" / "images.npy"), written["train_images"])
    np.testing.assert_array_equal(np.load(tmp_path / "in64" / "labels.npy"), written["train_labels"] - 1)
    val = prepare(tmp_path, tmp_path / "val", fmt="npy", split="test", progress=False)
    assert val.manifest.count == 3
    np.testing.assert_array_equal(np.load(tmp_path / "val" / "labels.npy"), [0, 1, 999])


def test_imagenet_batch_with_zero_label_or_wrong_width_is_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "train_data_batch_1.npz", data=np.zeros((2, 3 * 64), np.uint8), labels=[0, 1])
    with pytest.raises(ValueError, match=r"train_data_batch_1\.npz.*1-based"):
        read_imagenet_batch(tmp_path / "train_data_batch_1.npz")
    np.savez(tmp_path / "train_data_batch_2.npz", data=np.zeros((2, 100), np.uint8), labels=[1, 1])
    with pytest.raises(ValueError, match=r"train_data_batch_2\.npz.*3\*S\*S"):
        read_imagenet_batch(tmp_path / "train_data_batch_2.npz")


def test_imagenet_resized_on_preparing_and_a_bad_batch_named_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write_fake_imagenet(tmp_path / "in", side=8, per_batch=3, batches=1)
    assert main(["prepare", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--image_size", "4"]) == 0
    assert (tmp_path / "o" / "shard-000000.tar").is_file()  # the default format is shards
    small = prepare(tmp_path / "in", tmp_path / "o4", fmt="npy", image_size=4, progress=False)
    assert small.manifest.image_shape == [4, 4, 3]
    # 8 -> 4 is one BOX halving (8 >= 2*4) and no bicubic change: each pixel is its 2x2 block's mean
    source = written["train_images"].astype(np.int64)
    sums = source.reshape(3, 4, 2, 4, 2, 3).sum(axis=(2, 4))
    got = np.load(tmp_path / "o4" / "images.npy").astype(np.int64)
    # Pillow resizes in two separable passes (rows, then columns), each rounded to uint8: <= 0.5 + 0.5
    assert np.abs(got - sums / 4).max() <= 1.0
    np.savez(tmp_path / "in" / "train_data_batch_2.npz", data=np.zeros((2, 100), np.uint8), labels=[1, 2])
    capsys.readouterr()
    assert main(["prepare", str(tmp_path / "in"), "--out", str(tmp_path / "o5"), "--progress", "False"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train_data_batch_2.npz" in err[-1]
