"""A training step queues its GPU work without waiting for it: no host synchronisation per step.

The check is CUDA's own: ``torch.cuda.set_sync_debug_mode("error")`` raises on any synchronising call
(``.item()``, a blocking host ↔ device copy, ``nonzero``, a data-dependent shape).  The paper's recipe is
used (learned σ, L_hybrid, loss-second-moment sampler with a full history, EMA, gradient clipping, fused
AdamW).  fp16 is left out on purpose: its dynamic loss scaling reads the overflow flag on the host.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks import configs
from impl.diffusion import create_named_schedule_sampler
from impl.factory import create_model_and_diffusion
from impl.train import DistContext, InMemoryData, TrainConfig, Trainer
from impl.train.batches import copy_without_host_sync

# The benchmark suite's tiny CIFAR-10 stand-in (learned σ, scale-shift norm, dropout, attention) at T = 50.
TINY_FLAGS = {**configs.CIFAR10_TINY.flags, "diffusion_steps": 50}


def _trainer(device: torch.device, precision: str) -> Trainer:
    torch.manual_seed(0)
    model, diffusion = create_model_and_diffusion(**TINY_FLAGS)
    sampler = create_named_schedule_sampler("loss-second-moment", diffusion)
    steps = diffusion.num_timesteps
    sampler.update_with_all_losses(torch.arange(steps).repeat(10), torch.rand(10 * steps).double() + 0.1)
    pixels = torch.randint(0, 256, (32, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    config = TrainConfig(
        batch_size=8,
        precision=precision,
        schedule_sampler="loss-second-moment",
        optimizer_impl="fused",
        channels_last=True,
        progress=False,
        num_grid_samples=0,
        save_interval=0,
        device=str(device),
        model_flags=dict(TINY_FLAGS),
    )
    return Trainer(
        model=model,
        diffusion=diffusion,
        data=InMemoryData(pixels.to(torch.uint8)),
        config=config,
        ctx=DistContext(device=device),
        schedule_sampler=sampler,
    )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_step_never_synchronises_the_host(precision: str) -> None:
    trainer = _trainer(torch.device("cuda"), precision)
    for _ in range(2):  # warm-up: allocator growth, lazy initialisation, cuDNN autotuning
        trainer.train_step()
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            trainer.train_step()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    torch.cuda.synchronize()
    assert trainer.step == 5


@pytest.mark.cuda(optional=True)
def test_copy_without_host_sync_keeps_values_and_skips_same_device_copies() -> None:
    values = torch.arange(7)
    assert copy_without_host_sync(values, torch.device("cpu")) is values
    if torch.cuda.is_available():
        moved = copy_without_host_sync(values, torch.device("cuda"))
        assert moved.is_cuda and torch.equal(moved.cpu(), values)
