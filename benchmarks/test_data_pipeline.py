"""Benchmark: images per second the data pipeline delivers to the training device, 64x64 RGB.

Readers: the in-memory tensor (the reference), the ``.npy`` reader and the tar-shard reader, each with 0, 2
and all (``os.cpu_count()``) DataLoader workers.  One call is ``STEPS`` consecutive ``fetch(step, device)``
calls of a batch of ``BATCH``, as the trainer makes them, after a warm-up that starts the workers; each
record carries ``images_per_s`` and ``ratio_vs_memory`` (against the in-memory reader of the same session).
The pipeline runs on the host, so CPU figures are the meaningful ones; on CUDA the batches also cross
to the device through pinned memory.  ``IDDPM_BENCH_SCALE=paper`` uses 8,192 images instead of 512.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.harness import BenchmarkFixture
from impl.data.npy import NpyImages
from impl.data.prepare import prepare
from impl.data.shard_set import open_shard_set
from impl.train.batches import BatchSource, InMemoryData
from impl.train.stream_batches import IndexedStreamData, ShardStreamData

SIDE = 64
BATCH = 64
STEPS = 4
ALL_WORKERS = os.cpu_count() or 1
READERS = ["memory", *(f"{kind}-{w}" for kind in ("npy", "shards") for w in ("0", "2", "all"))]
RATES: dict[str, float] = {}


def _count() -> int:
    return 8192 if os.environ.get("IDDPM_BENCH_SCALE") == "paper" else 512


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("data_pipeline")
    n = _count()
    images = np.random.default_rng(0).integers(0, 256, (n, SIDE, SIDE, 3), dtype=np.uint8)
    np.save(root / "images.npy", images)
    np.savez(root / "set.npz", arr_0=images, arr_1=np.arange(n) % 10)
    shards = max(2 * ALL_WORKERS, 8)  # every worker stream needs shards of its own
    prepare(root / "set.npz", root / "shards", fmt="shards", shard_size=-(-n // shards), progress=False)
    yield {"npy": root / "images.npy", "shards": root / "shards"}


def _source(reader: str, files: dict[str, Path]) -> BatchSource:
    if reader == "memory":
        images = np.load(files["npy"])
        return InMemoryData(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))))
    kind, spec = reader.split("-")
    workers = ALL_WORKERS if spec == "all" else int(spec)
    if kind == "npy":
        return IndexedStreamData(NpyImages(files["npy"]), num_workers=workers)
    return ShardStreamData(open_shard_set(str(files["shards"])), num_workers=workers)


@pytest.mark.parametrize("reader", READERS)
def test_data_pipeline_images_per_second(
    benchmark: BenchmarkFixture, device: torch.device, data_files: dict[str, Path], reader: str
) -> None:
    source = _source(reader, data_files).to(device)
    source.bind(seed=0, global_batch=BATCH, rank=0, world_size=1)
    step = 0

    def deliver() -> None:
        nonlocal step
        for _ in range(STEPS):
            x, _ = source.fetch(step, device)
            step += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        assert x.shape == (BATCH, 3, SIDE, SIDE)

    deliver()  # warm-up: starts the workers, fills their prefetch queues
    start = time.perf_counter()
    benchmark(deliver)
    elapsed = time.perf_counter() - start  # one untimed call under --benchmark-disable
    seconds = elapsed if benchmark.disabled else float(benchmark.stats.stats.median)
    rate = STEPS * BATCH / seconds
    RATES[reader] = rate
    benchmark.group = "data_pipeline/64x64"
    benchmark.extra_info.update(
        {
            "reader": reader,
            "num_workers": getattr(source, "num_workers", 0),
            "images_per_s": rate,
            "ratio_vs_memory": rate / RATES["memory"] if "memory" in RATES else None,
            "batch_size": BATCH,
            "device": str(device),
            "timed_by": "single-call" if benchmark.disabled else "pytest-benchmark-median",
        }
    )
    close = getattr(source, "close", None)
    if close is not None:
        close()
