"""Tar shards: shard lists, the (seed, epoch) order split over ranks and workers, resume, bad shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from impl.data.prepare import prepare
from impl.data.shard_set import open_shard_set
from impl.data.shards import expand_shard_spec
from impl.data.training_source import open_training_data
from impl.train.shard_order import (
    stream_batches_before,
    stream_sequence,
    stream_shards,
    stream_start,
)
from impl.train.stream_batches import ShardStreamData

CPU = torch.device("cpu")


def _shards(tmp_path: Path, n: int = 24, shard_size: int = 3) -> Path:
    """``n`` 4x4 images whose label is their index (so every delivered example names itself)."""
    images = np.random.default_rng(0).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "set.npz", arr_0=images, arr_1=np.arange(n))
    out = tmp_path / "shards"
    prepare(tmp_path / "set.npz", out, fmt="shards", shard_size=shard_size, progress=False)
    return out


def test_shard_lists_folder_pattern_and_text_file(tmp_path: Path) -> None:
    out = _shards(tmp_path, n=9)
    names = [str(out / f"shard-{k:06d}.tar") for k in range(3)]
    assert expand_shard_spec(str(out)) == names
    assert expand_shard_spec(str(out / "shard-{000000..000002}.tar")) == names
    listing = tmp_path / "list.txt"
    listing.write_text("# my shards\n" + "\n".join(names) + "\n\n")
    assert expand_shard_spec(str(listing)) == names
    scanned = open_shard_set(str(out / "shard-{000000..000002}.tar"))  # no manifest: counted by reading
    from_manifest = open_shard_set(str(out))
    assert scanned.counts == from_manifest.counts == (3, 3, 3)
    assert scanned.num_classes == from_manifest.num_classes == 9


@pytest.mark.parametrize(("world_size", "streams"), [(1, 1), (2, 1), (2, 3), (3, 2)])
def test_every_epoch_the_ranks_and_streams_split_the_shards(world_size: int, streams: int) -> None:
    for epoch in range(3):
        parts = [
            stream_shards(11, epoch, 12, rank, world_size, stream, streams)
            for rank in range(world_size)
            for stream in range(streams)
        ]
        flat = [k for part in parts for k in part]
        assert sorted(flat) == list(range(12))  # disjoint and together every shard once
    assert stream_shards(11, 0, 12, 0, 1, 0, 1) != stream_shards(
        11, 1, 12, 0, 1, 0, 1
    )  # reshuffled per epoch


def test_stream_start_is_where_the_sequence_has_delivered_that_many_samples() -> None:
    counts = [3, 1, 4, 2, 5, 2]
    full = stream_sequence(counts, 4, 0, 2, 1, 1, stream_start(counts, 4, 0, 2, 1, 1, 0))
    delivered: list[tuple[int, int]] = []  # (shard, sample) in reading order, over several epochs
    for shard, skip in full:
        assert skip == 0
        delivered += [(shard, i) for i in range(counts[shard])]
        if len(delivered) > 40:
            break
    for consumed in range(40):
        start = stream_start(counts, 4, 0, 2, 1, 1, consumed)
        shard, skip = next(stream_sequence(counts, 4, 0, 2, 1, 1, start))
        assert delivered[consumed] == (shard, skip)
    assert [stream_batches_before(7, q, 3) for q in range(3)] == [3, 2, 2]  # batches 0..6 by j mod 3


def _labels(source: ShardStreamData, steps: range) -> list[list[int]]:
    out = []
    for step in steps:
        _, y = source.fetch(step, CPU)
        assert y is not None
        out.append(y.tolist())
    return out


@pytest.mark.parametrize("num_workers", [0, 2])
def test_two_ranks_see_every_example_once_per_epoch(tmp_path: Path, num_workers: int) -> None:
    shard_set = open_shard_set(str(_shards(tmp_path)))  # 8 shards of 3
    seen: list[int] = []
    for rank in (0, 1):
        source = ShardStreamData(shard_set, num_workers=num_workers)
        source.bind(seed=3, global_batch=6, rank=rank, world_size=2)
        # a rank's epoch: 4 shards x 3 = 12 examples = 4 local batches of 3
        seen += [label for batch in _labels(source, range(4)) for label in batch]
        source.close()
    assert sorted(seen) == list(range(24))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_mid_shard_continues_the_same_order(tmp_path: Path, num_workers: int) -> None:
    shard_set = open_shard_set(str(_shards(tmp_path)))
    straight = ShardStreamData(shard_set, num_workers=num_workers)
    resumed = ShardStreamData(shard_set, num_workers=num_workers)
    for source in (straight, resumed):
        source.bind(seed=9, global_batch=4, rank=1, world_size=2)  # local batch 2: cuts shards of 3
    expected = _labels(straight, range(13))  # past one epoch of the rank (12 examples = 6 steps)
    for start in (3, 7):
        assert _labels(resumed, range(start, 13)) == expected[start:]
        resumed.close()
    straight.close()


def test_too_few_shards_for_ranks_times_workers_is_an_error(tmp_path: Path) -> None:
    source = ShardStreamData(open_shard_set(str(_shards(tmp_path, n=9))), num_workers=2)
    with pytest.raises(ValueError, match="3 tar shards cannot feed 2 rank"):
        source.bind(seed=0, global_batch=2, rank=0, world_size=2)


def test_missing_corrupt_and_disagreeing_shards_are_named(tmp_path: Path) -> None:
    out = _shards(tmp_path, n=9)
    with pytest.raises(ValueError, match=r"shard-000003\.tar.*does not exist"):
        open_shard_set(str(out / "shard-{000000..000007}.tar"))
    bad = tmp_path / "junk"
    bad.mkdir()
    (bad / "a.tar").write_bytes(b"\x00" * 100 + b"not a tar" * 200)
    with pytest.raises(ValueError, match=r"a\.tar.*truncated or corrupt"):
        open_shard_set(str(bad))
    (out / "shard-000001.tar").unlink()
    with pytest.raises(ValueError, match=r"shard-000001\.tar.*missing"):
        open_training_data(str(out), image_size=4)


def test_url_list_is_opened_through_webdataset_gopen(tmp_path: Path) -> None:
    out = _shards(tmp_path, n=6)
    listing = tmp_path / "urls.txt"  # pipe: URLs stand in for remote ones (no network here)
    listing.write_text("".join(f"pipe:cat {out / f'shard-{k:06d}.tar'}\n" for k in range(2)))
    shard_set = open_shard_set(str(listing))
    assert shard_set.counts == (3, 3) and shard_set.urls[0].startswith("pipe:cat ")
    source = ShardStreamData(shard_set)
    source.bind(seed=0, global_batch=6, rank=0, world_size=1)
    assert sorted(_labels(source, range(1))[0]) == list(range(6))


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_shard_corrupted_after_preparing_is_named_when_read(tmp_path: Path, num_workers: int) -> None:
    out = _shards(tmp_path, n=6)
    shard = out / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    start = data.index(b"\x89PNG")  # the first image's PNG signature: same size, undecodable
    data[start : start + 8] = b"garbage!"
    shard.write_bytes(bytes(data))
    opened = open_training_data(str(out), image_size=4)  # opens: the sizes still match the manifest
    assert opened.shards is not None
    source = ShardStreamData(opened.shards, num_workers)
    source.bind(seed=0, global_batch=6, rank=0, world_size=1)
    with pytest.raises(ValueError, match=r"shard-000001\.tar.*not a readable PNG") as info:
        source.fetch(0, CPU)
    assert "\n" not in str(info.value)
