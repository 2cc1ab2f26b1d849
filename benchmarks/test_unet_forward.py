"""Benchmark: the U-Net forward pass alone (inference, no grad), CIFAR-10 model at the sampling batch."""

from __future__ import annotations

import torch

from benchmarks import configs
from benchmarks.builders import build_model_and_diffusion, inference_model, naive_attention, random_images
from benchmarks.harness import BenchmarkFixture, Mode, Workload, flops_for, run_benchmark, to_memory_format


def test_unet_forward_cifar10(
    benchmark: BenchmarkFixture, mode: Mode, device: torch.device, scale: str
) -> None:
    """One forward of the CIFAR-10 U-Net (learned σ: 6 output channels) at batch 256 on CUDA."""
    config = configs.cifar10(scale)
    batch = configs.sizes(scale).sample_batch
    model, diffusion = build_model_and_diffusion(config, mode, device)
    net = inference_model(model, mode, device)
    size = config.image_size
    x = to_memory_format(random_images((batch, config.channels, size, size), device), mode)
    generator = torch.Generator(device="cpu").manual_seed(1)
    steps = diffusion.num_timesteps
    t = (torch.randint(0, steps, (batch,), generator=generator).float() * (1000.0 / steps)).to(device)

    def forward() -> None:
        with torch.no_grad():
            net(x, t)

    def eager_forward() -> None:
        with torch.no_grad(), naive_attention(model):
            model(x, t)

    workload = Workload(f"unet_forward/{config.name}", scale, images_per_call=batch)
    run_benchmark(
        benchmark,
        forward,
        workload=workload,
        mode=mode,
        device=device,
        flops_per_call=flops_for(workload, eager_forward),
        warmup_calls=configs.warmup_calls(device.type, compiled=mode.compile),
        extra={"batch_size": batch, "model": config.name},
    )
