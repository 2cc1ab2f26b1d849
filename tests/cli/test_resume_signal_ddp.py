"""Exact resume through the CLI, SIGTERM saves and exits cleanly, and 2-process DDP equals 1 process."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from impl.cli import main
from impl.factory import build_model_and_diffusion
from impl.runtime.seeding import STREAM_INIT, derive_seed
from impl.train import load_training_checkpoint
from testing.assertions import assert_close
from testing.tolerances import Train, tolerance
from tests.cli.tiny import tiny_train

REPO = Path(__file__).resolve().parents[2]


def _tensors(step_dir: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name in ("model", "ema_0.9999", "optimizer"):
        out.update({f"{name}/{k}": v for k, v in load_file(str(step_dir / f"{name}.safetensors")).items()})
    return out


def test_four_steps_resume_four_steps_equals_eight_bit_for_bit(tmp_path: Path) -> None:
    common = ["--dropout", "0.1", "--lr_anneal_steps", "8", "--schedule_sampler", "loss-second-moment"]
    assert main(tiny_train(str(tmp_path / "straight"), "--max_steps", "8", *common)) == 0
    assert main(tiny_train(str(tmp_path / "split"), "--max_steps", "4", *common)) == 0
    resume = ["train", "--resume", str(tmp_path / "split"), "--max_steps", "8", "--progress", "False"]
    assert main(resume) == 0
    a = _tensors(tmp_path / "straight" / "checkpoints" / "step_0000008")
    b = _tensors(tmp_path / "split" / "checkpoints" / "step_0000008")
    assert a.keys() == b.keys()
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched
    sa = load_file(str(tmp_path / "straight" / "checkpoints" / "step_0000008" / "sampler.safetensors"))
    sb = load_file(str(tmp_path / "split" / "checkpoints" / "step_0000008" / "sampler.safetensors"))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert int(sa["loss_counts"].sum()) == 8 * 8  # every (t, loss) pair of 8 steps of batch 8 was fed


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    return env


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = tiny_train(str(run_dir), "--max_steps", "100000", "--log_interval", "1", "--save_interval", "0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "impl.cli", *args],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        log = run_dir / "log.jsonl"
        while not (log.is_file() and len(log.read_text().splitlines()) >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped at step" in err
    ckpt = load_training_checkpoint(run_dir)
    assert 3 <= ckpt.step < 100000
    assert ckpt.optimizer is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.distributed
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    steps, lr = 1, 1e-2  # one step: see the ddp_params tolerance for why not more
    args = [
        "--max_steps",
        str(steps),
        "--lr",
        str(lr),
        "--lr_anneal_steps",
        "0",
        "--device",
        "cpu",
        "--num_grid_samples",
        "0",
    ]
    assert main(tiny_train(str(tmp_path / "one"), *args)) == 0
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "impl.cli",
        *tiny_train(str(tmp_path / "two"), *args),
    ]
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    one = load_file(str(tmp_path / "one" / "checkpoints" / f"step_{steps:07d}" / "model.safetensors"))
    two = load_file(str(tmp_path / "two" / "checkpoints" / f"step_{steps:07d}" / "model.safetensors"))
    flags = json.loads((tmp_path / "one" / "config.json").read_text())["model_flags"]
    torch.manual_seed(derive_seed(0, STREAM_INIT))  # the trainer's initialisation seed for --seed 0
    init = build_model_and_diffusion(flags)[0].state_dict()
    tol = tolerance(Train.DDP_PARAMS)
    budget = tol.atol * lr * steps
    in_weights = dataclasses.replace(tol, atol=budget)  # the entry's unit (lr per step) in weight units
    moved = max(float((one[k] - init[k]).abs().max()) for k in one)
    assert moved > 100 * budget  # the comparison below can fail: training moved the weights
    # the averaged gradients themselves: after one step AdamW's first moment is (1 − β1)·g
    step_dir = f"checkpoints/step_{steps:07d}/optimizer.safetensors"
    m_one, m_two = load_file(str(tmp_path / "one" / step_dir)), load_file(str(tmp_path / "two" / step_dir))
    grad_tol = tolerance(Train.DDP_GRAD)
    for key in (k for k in m_one if k.endswith("exp_avg")):
        scale = float(m_one[key].abs().max())
        assert float((m_two[key] - m_one[key]).abs().max()) <= grad_tol.atol * scale, key
    for key in one:
        assert_close(two[key], one[key], tol=in_weights, label=key)
    # the logs were averaged across ranks and written once (rank 0)
    log_two = (tmp_path / "two" / "log.jsonl").read_text().splitlines()
    assert len(log_two) == len((tmp_path / "one" / "log.jsonl").read_text().splitlines())
