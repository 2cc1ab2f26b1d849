"""The multi-rank path of `update_with_local_losses`: 2 gloo processes on CPU with unequal batch sizes
must each end with the history of the reference update applied to all ranks' pairs in rank order."""

from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import impl
from reference.timesteps import update_loss_history

STEPS = 5
HISTORY = 3
# Rank r's (t, loss) pairs; rank 1 has a longer batch, so padding and trimming are exercised.
BATCHES = {
    0: ([0, 1, 1], [0.5, 1.5, 2.5]),
    1: ([1, 1, 2, 4, 4, 0], [3.5, 4.5, 5.5, 6.5, 7.5, 8.5]),
}
ROUNDS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=30))
    try:
        betas = impl.get_named_beta_schedule("cosine", STEPS)
        diffusion = impl.GaussianDiffusion(
            betas=betas,
            model_mean_type=impl.ModelMeanType.EPSILON,
            model_var_type=impl.ModelVarType.FIXED_SMALL,
            loss_type=impl.LossType.MSE,
        )
        sampler = impl.LossSecondMomentResampler(diffusion, history_per_term=HISTORY)
        t, losses = BATCHES[rank]
        for round_index in range(ROUNDS):
            sampler.update_with_local_losses(
                torch.tensor(t), torch.tensor(losses, dtype=torch.float64) + 10.0 * round_index
            )
        np.save(Path(out_dir) / f"history{rank}.npy", sampler._loss_history.numpy())
        np.save(Path(out_dir) / f"counts{rank}.npy", sampler._loss_counts.numpy())
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_all_gather_update_matches_reference(tmp_path: Path) -> None:
    """Both ranks hold the reference history of rank 0's pairs then rank 1's, round after round."""
    spawn = mp.spawn  # type: ignore[attr-defined]
    spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)  # type: ignore[no-untyped-call]
    history = np.zeros((STEPS, HISTORY))
    counts = np.zeros(STEPS, dtype=np.int64)
    for round_index in range(ROUNDS):
        for rank in (0, 1):
            t, losses = BATCHES[rank]
            history, counts = update_loss_history(
                history, counts, np.asarray(t), np.asarray(losses) + 10.0 * round_index
            )
    for rank in (0, 1):
        assert np.array_equal(np.load(tmp_path / f"history{rank}.npy"), history)
        assert np.array_equal(np.load(tmp_path / f"counts{rank}.npy"), counts)
