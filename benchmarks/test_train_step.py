"""Benchmark: one full training step (data → t draw → forward → L_hybrid → backward → clip → AdamW → EMA →
loss-second-moment update), CIFAR-10 at batch 128 and ImageNet-64 at batch 64 on CUDA (tiny on CPU)."""

from __future__ import annotations

import torch

from benchmarks import configs
from benchmarks.builders import build_trainer, naive_attention, random_images
from benchmarks.harness import BenchmarkFixture, Mode, Target, Workload, flops_for, run_benchmark
from impl.train import Trainer


def _count_step_flops(trainer: Trainer, batch: int) -> None:
    """One eager fp32 forward + backward of the loss (the matmul/conv work of a step), gradients discarded."""
    model = trainer.model
    shape = (batch, *trainer.data.sample_shape)
    x = random_images(shape, trainer.device)
    t = torch.randint(0, trainer.diffusion.num_timesteps, (batch,), device=trainer.device)
    with naive_attention(model):
        losses = trainer.diffusion.training_losses(model, x, t)
        losses["loss"].mean().backward()  # type: ignore[no-untyped-call]
    trainer.optimizer.zero_grad(set_to_none=True)


def _bench_train_step(
    benchmark: BenchmarkFixture,
    mode: Mode,
    device: torch.device,
    scale: str,
    *,
    config: configs.ModelConfig,
    batch: int,
    target: Target,
) -> None:
    size = configs.sizes(scale)
    trainer = build_trainer(config, mode, device, batch_size=batch, data_items=size.data_items)
    workload = Workload(f"train_step/{config.name}", scale, images_per_call=batch, target=target)
    flops = flops_for(workload, lambda: _count_step_flops(trainer, batch))
    run_benchmark(
        benchmark,
        trainer.train_step,
        workload=workload,
        mode=mode,
        device=device,
        flops_per_call=flops,
        warmup_calls=configs.warmup_calls(device.type, compiled=mode.compile),
        extra={"batch_size": batch, "model": config.name, "trainer_step_after_run": trainer.step},
    )


def test_train_step_cifar10(
    benchmark: BenchmarkFixture, mode: Mode, device: torch.device, scale: str
) -> None:
    """CIFAR-10, L_hybrid, importance sampler, EMA 0.9999 (target on H200: >= 4,000 img/s, <= 6 GiB)."""
    batch = configs.sizes(scale).train_batch
    _bench_train_step(
        benchmark,
        mode,
        device,
        scale,
        config=configs.cifar10(scale),
        batch=batch,
        target=configs.CIFAR_TRAIN_TARGET,
    )


def test_train_step_imagenet64(
    benchmark: BenchmarkFixture, mode: Mode, device: torch.device, scale: str
) -> None:
    """ImageNet 64×64, mult (1,2,3,4), batch 64 (target on H200: >= 1,300 img/s)."""
    batch = configs.sizes(scale).imagenet_train_batch
    _bench_train_step(
        benchmark,
        mode,
        device,
        scale,
        config=configs.imagenet64(scale),
        batch=batch,
        target=configs.IMAGENET64_TRAIN_TARGET,
    )
