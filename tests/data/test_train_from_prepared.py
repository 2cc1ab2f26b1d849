"""Training through the CLI from prepared CIFAR-10 data: streamed ≡ in memory, and resume is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from impl.cli import main
from tests.cli.tiny import tiny_train
from tests.data.fakes import write_fake_cifar

FLAGS = ["--image_size", "8", "--num_grid_samples", "0", "--lr_anneal_steps", "8", "--dropout", "0.1"]


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    folder = run / "checkpoints" / f"step_{step:07d}"
    out: dict[str, torch.Tensor] = {}
    for name in ("model", "optimizer"):
        out.update({f"{name}/{k}": v for k, v in load_file(str(folder / f"{name}.safetensors")).items()})
    return out


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cifar")
    write_fake_cifar(root, per_batch=6, archive=True)  # 30 training images
    archive = str(root / "cifar-10-python.tar.gz")
    out = {"npy": root / "npy", "shards": root / "shards"}
    assert main(["prepare", archive, "--out", str(out["npy"]), "--format", "npy", "--image_size", "8"]) == 0
    argv = ["prepare", archive, "--out", str(out["shards"]), "--image_size", "8", "--shard_size", "5"]
    assert main(argv) == 0
    return out


def _train(run: Path, data: Path, steps: int, *extra: str) -> None:
    assert main(tiny_train(str(run), "--data", str(data), "--max_steps", str(steps), *FLAGS, *extra)) == 0


def _resume(run: Path, steps: int) -> None:
    assert main(["train", "--resume", str(run), "--max_steps", str(steps), "--progress", "False"]) == 0


def test_npy_streamed_equals_in_memory_and_resumes_bit_for_bit(
    tmp_path: Path, prepared: dict[str, Path]
) -> None:
    images = np.load(prepared["npy"] / "images.npy")
    assert images.shape == (30, 8, 8, 3)
    labelled = ("--class_cond", "True")  # the labels travel with the streamed batches too
    _train(tmp_path / "memory", prepared["npy"], 8, "--data_loader", "memory", *labelled)
    _train(tmp_path / "stream", prepared["npy"], 8, "--data_loader", "stream", *labelled)
    memory, stream = _weights(tmp_path / "memory", 8), _weights(tmp_path / "stream", 8)
    assert _equal(memory, stream)
    _train(tmp_path / "split", prepared["npy"], 4, "--data_loader", "stream", "--num_workers", "1", *labelled)
    _resume(tmp_path / "split", 8)
    assert _equal(_weights(tmp_path / "split", 8), stream)


def test_shards_resume_continues_the_same_stream(tmp_path: Path, prepared: dict[str, Path]) -> None:
    _train(tmp_path / "straight", prepared["shards"], 8)  # 6 shards of 5; batch 8 cuts shards
    _train(tmp_path / "split", prepared["shards"], 3)
    _resume(tmp_path / "split", 8)
    assert _equal(_weights(tmp_path / "straight", 8), _weights(tmp_path / "split", 8))


def test_resuming_a_shard_run_with_other_workers_is_refused(
    tmp_path: Path, prepared: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _train(tmp_path / "run", prepared["shards"], 2)
    capsys.readouterr()
    argv = ["train", "--resume", str(tmp_path / "run"), "--max_steps", "4", "--num_workers", "2"]
    assert main([*argv, "--progress", "False"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "num_workers" in err[-1] and "tar-shard" in err[-1]


def test_bad_training_data_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "floats.npy", np.zeros((4, 8, 8, 3), np.float32))
    assert main(tiny_train(str(tmp_path / "r"), "--data", str(tmp_path / "floats.npy"), *FLAGS)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "floats.npy" in err[0] and "uint8" in err[0]


@pytest.mark.slow
@pytest.mark.distributed
def test_two_gloo_processes_stream_shards_with_workers(tmp_path: Path, prepared: dict[str, Path]) -> None:
    """A real 2-rank run reads tar shards through DataLoader workers and checkpoints (6 shards >= 2 x 2)."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = Path(__file__).resolve().parents[2]
    argv = tiny_train(str(tmp_path / "two"), "--data", str(prepared["shards"]), "--max_steps", "3", *FLAGS)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        "-m",
        "impl.cli",
        *argv,
        "--device",
        "cpu",
        "--num_workers",
        "2",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo))
    done = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "two" / "checkpoints" / "step_0000003" / "model.safetensors").is_file()
