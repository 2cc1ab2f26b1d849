"""``evaluate_samples`` under DDP: each of 2 gloo ranks draws its share with its own seeds, rank 0 scores the
first K in rank order.  A stand-in trainer writes the seed of each image into its pixels, so the gathered
batch shows exactly which rank and batch drew what."""

from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from impl.runtime.seeding import derive_seed
from impl.train.distributed import DistContext
from impl.train.sample_eval import STREAM_EVAL, evaluate_samples

SEED, STEP, EVAL_SAMPLES, GLOBAL_BATCH = 7, 3, 5, 4  # share 3 per rank, batches of 2 then 1


def _seed_pixels(seed: int) -> np.ndarray:
    """Four bytes of the seed as a 2x2 greyscale image."""
    return np.frombuffer(int(seed % 2**32).to_bytes(4, "little"), dtype=np.uint8).reshape(2, 2, 1)


def _fake_trainer(rank: int, world: int) -> Any:
    def sample_images(num: int, rate: float | None = None, seed: int | None = None) -> np.ndarray:
        assert seed is not None
        return np.stack([_seed_pixels(seed)] * num)

    return SimpleNamespace(
        config=SimpleNamespace(seed=SEED, eval_samples=EVAL_SAMPLES, batch_size=GLOBAL_BATCH),
        ctx=DistContext(rank=rank, world_size=world),
        step=STEP,
        device=torch.device("cpu"),
        logger=None,
        run_dir=None,
        sample_images=sample_images,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=30))
    try:

        def scorer(images: np.ndarray) -> dict[str, Any]:
            np.save(Path(out_dir) / "scored.npy", images)
            return {"fid": 1.5}

        record = evaluate_samples(_fake_trainer(rank, world), scorer if rank == 0 else None)
        if rank == 0:
            assert record == {"step": STEP, "eval_num_samples": EVAL_SAMPLES, "eval_fid": 1.5}
        else:
            assert record is None
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_ranks_share_the_eval_samples(tmp_path: Path) -> None:
    # fork: the children inherit this module (tests/ is not an importable package for a spawned child)
    mp.start_processes(  # type: ignore[no-untyped-call]
        _worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork"
    )
    scored = np.load(tmp_path / "scored.npy")
    seeds = [derive_seed(SEED, STREAM_EVAL, STEP, rank, batch) for rank, batch in ((0, 0), (0, 1), (1, 0))]
    expected = np.stack([_seed_pixels(s) for s in (seeds[0], seeds[0], seeds[1], seeds[2], seeds[2])])
    assert len(set(seeds)) == 3
    np.testing.assert_array_equal(scored, expected)


def test_one_process_draws_all_samples_itself() -> None:
    scored: list[np.ndarray] = []
    record = evaluate_samples(_fake_trainer(0, 1), lambda images: scored.append(images) or {"fid": 2.0})
    assert record is not None and record["eval_fid"] == 2.0
    seeds = [derive_seed(SEED, STREAM_EVAL, STEP, 0, batch) for batch in (0, 1)]  # batches of 4, then 1
    expected = np.stack([_seed_pixels(seeds[0])] * 4 + [_seed_pixels(seeds[1])])
    np.testing.assert_array_equal(scored[0], expected)
