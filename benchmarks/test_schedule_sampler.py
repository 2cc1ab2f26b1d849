"""Benchmark: the loss-second-moment schedule sampler [S26], T = 4000, full history, on device tensors.

One call is what a training step asks of the sampler: ``sample`` (inverse-CDF draw of a batch of t and
their importance weights, with the step's generator) and ``update_with_all_losses`` (the vectorised
history update with that batch's losses), the two calls ``Trainer.train_step`` makes.
"""

from __future__ import annotations

import torch

from benchmarks import configs
from benchmarks.builders import prefill_loss_history
from benchmarks.harness import BenchmarkFixture, Mode, Workload, maybe_compile, run_benchmark
from impl.diffusion import LossSecondMomentResampler
from impl.factory import create_gaussian_diffusion


def test_schedule_sampler_loss_second_moment(
    benchmark: BenchmarkFixture, mode: Mode, device: torch.device, scale: str
) -> None:
    """Draw a batch of t with weights, then feed back that batch's losses (history on the device)."""
    config = configs.cifar10(scale)
    diffusion = create_gaussian_diffusion(
        steps=config.diffusion_steps, learn_sigma=True, noise_schedule=str(config.flags["noise_schedule"])
    )
    sampler = LossSecondMomentResampler(diffusion)
    prefill_loss_history(sampler, diffusion.num_timesteps)
    batch = configs.sizes(scale).sampler_batch
    losses = (torch.rand(batch, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.05).to(
        device
    )
    # move the history to the device once, as the trainer's first update does
    sampler.update_with_all_losses(torch.zeros(1, dtype=torch.long, device=device), losses[:1])
    generator = torch.Generator(device=device).manual_seed(0)

    def draw_and_update() -> None:
        t, _weights = sampler.sample(batch, device, generator=generator)
        sampler.update_with_all_losses(t, losses)

    run_benchmark(
        benchmark,
        maybe_compile(draw_and_update, mode),
        workload=Workload("schedule_sampler/loss_second_moment", scale, images_per_call=batch),
        mode=mode,
        device=device,
        flops_per_call=None,
        warmup_calls=configs.warmup_calls(device.type, compiled=mode.compile),
        extra={"batch_size": batch, "num_timesteps": diffusion.num_timesteps, "unit": "timesteps per second"},
    )
