"""Benchmark: ``training_losses`` (L_hybrid, learned σ, T = 4000) with a trivial 1×1-conv model, forward and
backward: the diffusion-side overhead of a training step (q_sample, posterior, KL, discretized likelihood)."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks import configs
from benchmarks.builders import precision_of, random_images
from benchmarks.harness import (
    BenchmarkFixture,
    Mode,
    Workload,
    flops_for,
    maybe_compile,
    module_to_memory_format,
    run_benchmark,
    to_memory_format,
)
from impl.factory import create_gaussian_diffusion
from impl.train import AutocastModel, PrecisionPolicy


class TrivialModel(nn.Module):
    """A 1×1 convolution from C to 2C channels: the cheapest net with a mean and a variance output."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, 2 * channels, kernel_size=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.proj(x)
        return out


def test_training_losses_trivial_model(
    benchmark: BenchmarkFixture, mode: Mode, device: torch.device, scale: str
) -> None:
    """L_hybrid + backward at the CIFAR-10 training batch, with the network reduced to a 1×1 conv."""
    config = configs.cifar10(scale)
    batch = configs.sizes(scale).train_batch
    flags = config.flags
    diffusion = create_gaussian_diffusion(
        steps=config.diffusion_steps,
        learn_sigma=True,
        noise_schedule=str(flags["noise_schedule"]),
        rescale_timesteps=True,
        rescale_learned_sigmas=True,
    )
    model = module_to_memory_format(TrivialModel(config.channels).to(device), mode)
    net = AutocastModel(model, PrecisionPolicy.create(precision_of(mode), device))
    size = config.image_size
    x = to_memory_format(random_images((batch, config.channels, size, size), device), mode)
    generator = torch.Generator(device="cpu").manual_seed(2)
    t = torch.randint(0, diffusion.num_timesteps, (batch,), generator=generator).to(device)
    noise = to_memory_format(random_images(tuple(x.shape), device, seed=3), mode)

    def loss_and_backward(network: nn.Module) -> torch.Tensor:
        losses = diffusion.training_losses(network, x, t, noise=noise)
        loss = losses["loss"].mean()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss.detach()

    step = maybe_compile(loss_and_backward, mode)

    def call() -> None:
        step(net)
        model.zero_grad(set_to_none=True)

    workload = Workload("training_losses/trivial_model", scale, images_per_call=batch)
    run_benchmark(
        benchmark,
        call,
        workload=workload,
        mode=mode,
        device=device,
        flops_per_call=flops_for(workload, lambda: loss_and_backward(model)),
        warmup_calls=configs.warmup_calls(device.type, compiled=mode.compile),
        extra={"batch_size": batch, "num_timesteps": diffusion.num_timesteps},
    )
