"""``iddpm prepare``: the original's resize, shards and .npy with a manifest, verify on re-run, atomic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from impl.cli import main
from impl.data.images import resize_like_original
from impl.data.prepare import prepare
from impl.data.shards import iter_shard


def _block_means(image: np.ndarray) -> np.ndarray:
    h, w, c = image.shape
    return image.reshape(h // 2, 2, w // 2, 2, c).astype(np.int64).mean(axis=(1, 3))


def _blocky(h: int, w: int, seed: int) -> np.ndarray:
    """An image whose 2x2 blocks sum to a multiple of 4 (so their BOX means are exact integers)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(1, 254, (h // 2, w // 2, 3))
    offsets = np.array([[-1, 1], [1, -1]])  # sums to 0 in each block
    image = np.repeat(np.repeat(base, 2, axis=0), 2, axis=1) + np.tile(offsets, (h // 2, w // 2))[:, :, None]
    return image.astype(np.uint8)


def test_resize_halves_with_box_then_crops_the_centre() -> None:
    # 128 wide x 64 high to 32: one BOX halving (short side 64 >= 2*32) gives 64x32, bicubic at scale 1 is
    # the identity, and the centre crop keeps columns 16..48 of the halved image.
    image = _blocky(64, 128, seed=1)
    out = np.asarray(resize_like_original(Image.fromarray(image), 32))
    np.testing.assert_array_equal(out, _block_means(image)[:, 16:48])


def test_resize_stops_halving_below_twice_the_target_then_uses_bicubic() -> None:
    # 60x60 to 32: 60 < 64, no halving; bicubic to 32x32 (scale 32/60); nothing to crop.
    image = np.random.default_rng(2).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    picture = Image.fromarray(image)
    out = resize_like_original(picture, 32)
    assert out.size == (32, 32)
    expected = picture.resize((32, 32), resample=Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))
    flat = Image.fromarray(np.full((200, 90, 3), 77, dtype=np.uint8))  # constant stays constant, any shape
    assert np.all(np.asarray(resize_like_original(flat, 16)) == 77)


def _folder(tmp_path: Path, n: int = 5, size: int = 16) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{'cat' if i % 2 else 'dog'}_{i:03d}.png")
    return folder


def test_folder_to_shards_roundtrip_and_manifest(tmp_path: Path) -> None:
    folder = _folder(tmp_path, n=5)
    out = tmp_path / "shards"
    result = prepare(folder, out, fmt="shards", shard_size=2, folder_labels=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "shard-000000.tar",
        "shard-000001.tar",
        "shard-000002.tar",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 5 and manifest["image_shape"] == [16, 16, 3]
    assert manifest["label_names"] == ["cat", "dog"] and manifest["num_classes"] == 2
    assert [manifest["files"][f"shard-00000{k}.tar"]["count"] for k in range(3)] == [2, 2, 1]
    samples = [s for k in range(3) for s in iter_shard(str(out / f"shard-00000{k}.tar"))]
    files = sorted(folder.iterdir())
    for (_, image, label), path in zip(samples, files, strict=True):
        np.testing.assert_array_equal(image, np.asarray(Image.open(path)))
        assert label == (0 if path.name.startswith("cat") else 1)
    assert [key for key, _, _ in samples] == [f"{i:09d}" for i in range(5)]
    assert not result.verified


def test_rerun_verifies_and_names_a_corrupt_or_truncated_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _folder(tmp_path, n=4)
    out = tmp_path / "out"
    argv = ["prepare", str(folder), "--out", str(out), "--shard_size", "2", "--progress", "False"]
    assert main(argv) == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(argv) == 0
    assert "verified" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing rewritten
    shard = out / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF  # same size, different bytes
    shard.write_bytes(bytes(data))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shard-000001.tar" in err[0] and "sha256" in err[0]
    shard.write_bytes(bytes(data[:1024]))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "shard-000001.tar" in err and "truncated" in err
    assert main([*argv, "--shard_size", "3"]) == 2  # other settings: not silently replaced
    assert "--overwrite" in capsys.readouterr().err


def test_a_failed_run_leaves_out_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, n=4)
    out = tmp_path / "out"
    assert main(["prepare", str(folder), "--out", str(out), "--format", "npy", "--progress", "False"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    (folder / "dog_002.png").write_bytes(b"not a png")
    argv = ["prepare", str(folder), "--out", str(out), "--format", "npy", "--overwrite", "True"]
    assert main([*argv, "--progress", "False"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dog_002.png" in err[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "out"]  # no temporary folder left
    fresh = tmp_path / "fresh"
    assert main(["prepare", str(folder), "--out", str(fresh), "--progress", "False"]) == 2
    assert not fresh.exists()


def test_bad_sources_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(mixed / "a.png")
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(mixed / "b.png")
    cases = [(empty, "holds no image files"), (mixed, "b.png"), (tmp_path / "nope", "does not exist")]
    for source, needle in cases:
        assert main(["prepare", str(source), "--out", str(tmp_path / "o"), "--progress", "False"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    # the same mixed folder is fine once a size is given: every image is resized
    argv = ["prepare", str(mixed), "--out", str(tmp_path / "o"), "--image_size", "4", "--format", "npy"]
    assert main([*argv, "--progress", "False"]) == 0
    assert np.load(tmp_path / "o" / "images.npy").shape == (2, 4, 4, 3)


def test_npz_source_keeps_labels(tmp_path: Path) -> None:
    images = np.random.default_rng(3).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "set.npz", arr_0=images, arr_1=np.arange(6) % 2)
    result = prepare(tmp_path / "set.npz", tmp_path / "o", fmt="npy", progress=False)
    assert result.manifest.num_classes == 2
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "images.npy"), images)
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "labels.npy"), np.arange(6) % 2)
