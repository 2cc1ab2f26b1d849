"""Benchmarks: one ancestral sampling step, and a whole 50-step respaced sampling run, CIFAR-10 model with
learned σ at batch 256 on CUDA (target on H100: >= 300 img/s for the 50-step run)."""

from __future__ import annotations

import torch

from benchmarks import configs
from benchmarks.builders import build_model_and_diffusion, naive_attention, random_images, sampling_network
from benchmarks.harness import BenchmarkFixture, Mode, Workload, flops_for, run_benchmark, to_memory_format
from impl.sampling import SamplingOptions


def test_sample_step_cifar10(
    benchmark: BenchmarkFixture, mode: Mode, device: torch.device, scale: str
) -> None:
    """One ``p_sample`` (net + learned-range variance + posterior mean + noise) at a mid-chain step; in the
    compiled fast mode, one replay of the compiled step with its noise drawn outside, as the loop does."""
    config = configs.cifar10(scale)
    size = configs.sizes(scale)
    batch = size.sample_batch
    model, diffusion = build_model_and_diffusion(
        config, mode, device, timestep_respacing=str(size.sample_steps)
    )
    net, runner = sampling_network(model, mode, device)
    shape = (batch, config.channels, config.image_size, config.image_size)
    x = to_memory_format(random_images(shape, device), mode)
    t = torch.full((batch,), diffusion.num_timesteps // 2, dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        with torch.no_grad():
            if runner is None:
                diffusion.p_sample(net, x, t, generator=generator)
            else:
                noise = torch.randn(shape, generator=generator, device=device)
                runner.ancestral_step(diffusion, net, x, t, noise, SamplingOptions())

    def eager_step() -> None:
        with torch.no_grad(), naive_attention(model):
            diffusion.p_sample(model, x, t, generator=generator)

    workload = Workload(f"sample_step/{config.name}", scale, images_per_call=batch)
    run_benchmark(
        benchmark,
        step,
        workload=workload,
        mode=mode,
        device=device,
        flops_per_call=flops_for(workload, eager_step),
        warmup_calls=configs.warmup_calls(device.type, compiled=mode.compile),
        extra={
            "batch_size": batch,
            "respaced_steps": diffusion.num_timesteps,
            "step_runner": None if runner is None else type(runner).__name__,
        },
    )


def test_sample_loop_50_steps_cifar10(
    benchmark: BenchmarkFixture, mode: Mode, device: torch.device, scale: str
) -> None:
    """``p_sample_loop`` over 50 respaced steps of the T = 4000 cosine chain, from noise to images."""
    config = configs.cifar10(scale)
    size = configs.sizes(scale)
    batch = size.sample_batch
    model, diffusion = build_model_and_diffusion(
        config, mode, device, timestep_respacing=str(size.sample_steps)
    )
    net, runner = sampling_network(model, mode, device)
    shape = (batch, config.channels, config.image_size, config.image_size)
    generator = torch.Generator(device=device).manual_seed(0)

    def sample() -> None:
        diffusion.p_sample_loop(net, shape, device=device, generator=generator, step_runner=runner)

    def eager_sample() -> None:
        with naive_attention(model):
            diffusion.p_sample_loop(model, shape, device=device, generator=generator)

    workload = Workload(
        f"sample_loop_{size.sample_steps}_steps/{config.name}",
        scale,
        images_per_call=batch,
        target=configs.CIFAR_SAMPLE_TARGET,
    )
    run_benchmark(
        benchmark,
        sample,
        workload=workload,
        mode=mode,
        device=device,
        flops_per_call=flops_for(workload, eager_sample),
        warmup_calls=1,
        extra={
            "batch_size": batch,
            "respaced_steps": diffusion.num_timesteps,
            "step_runner": None if runner is None else type(runner).__name__,
        },
    )
