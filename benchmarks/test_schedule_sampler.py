"""Benchmarks: the loss-second-moment schedule sampler [S26] at T = 4000 with a full history.

- ``device``: the sampler's own API on device tensors: ``sample`` (inverse-CDF draw, importance weights)
  and ``update_with_local_losses`` (vectorised history update), as a fast training loop would call them;
- ``trainer_path``: what ``Trainer.train_step`` does today: ``sampler.weights()`` as NumPy, a multinomial
  draw on the device, and ``feed_losses`` (a host copy of t and the losses, ``update_with_all_losses``).
"""

from __future__ import annotations

import torch

from benchmarks import configs
from benchmarks.builders import prefill_loss_history
from benchmarks.harness import BenchmarkFixture, Mode, Workload, maybe_compile, run_benchmark
from impl.diffusion import create_gaussian_diffusion, create_named_schedule_sampler
from impl.train.timestep_sampling import draw_timesteps, feed_losses, sampler_probabilities


def _sampler_and_losses(scale: str, device: torch.device) -> tuple[object, torch.Tensor, int]:
    config = configs.cifar10(scale)
    diffusion = create_gaussian_diffusion(
        steps=config.diffusion_steps, learn_sigma=True, noise_schedule=str(config.flags["noise_schedule"])
    )
    sampler = create_named_schedule_sampler("loss-second-moment", diffusion)
    prefill_loss_history(sampler, diffusion.num_timesteps)
    batch = configs.sizes(scale).sampler_batch
    generator = torch.Generator(device="cpu").manual_seed(4)
    losses = (torch.rand(batch, generator=generator, dtype=torch.float64) + 0.05).to(device)
    return sampler, losses, diffusion.num_timesteps


def test_schedule_sampler_device(
    benchmark: BenchmarkFixture, mode: Mode, device: torch.device, scale: str
) -> None:
    """Draw a batch of t with weights, then feed back that batch's losses; all on the device."""
    sampler, losses, _ = _sampler_and_losses(scale, device)
    batch = losses.shape[0]
    generator = torch.Generator(device=device).manual_seed(0)

    def draw_and_update() -> None:
        t, _weights = sampler.sample(batch, device, generator=generator)  # type: ignore[attr-defined]
        sampler.update_with_local_losses(t, losses)  # type: ignore[attr-defined]

    run_benchmark(
        benchmark,
        maybe_compile(draw_and_update, mode),
        workload=Workload("schedule_sampler/device", scale, images_per_call=batch),
        mode=mode,
        device=device,
        flops_per_call=None,
        warmup_calls=configs.warmup_calls(device.type, compiled=mode.compile),
        extra={"batch_size": batch, "note": "images_per_s = timesteps drawn and fed back per second"},
    )


def test_schedule_sampler_trainer_path(
    benchmark: BenchmarkFixture, mode: Mode, device: torch.device, scale: str
) -> None:
    """The trainer's sampler work per step: NumPy probabilities, device draw, host feed-back of the losses."""
    sampler, losses, num_timesteps = _sampler_and_losses(scale, device)
    batch = losses.shape[0]
    generator = torch.Generator(device=device).manual_seed(0)

    def draw_and_update() -> None:
        probs = sampler_probabilities(sampler, num_timesteps)
        t, _weights = draw_timesteps(probs, num_timesteps, batch, generator, device)
        feed_losses(sampler, t, losses)

    run_benchmark(
        benchmark,
        draw_and_update,
        workload=Workload("schedule_sampler/trainer_path", scale, images_per_call=batch),
        mode=mode,
        device=device,
        flops_per_call=None,
        warmup_calls=configs.warmup_calls(device.type, compiled=False),
        extra={"batch_size": batch, "note": "same code in both modes (host NumPy path, not compiled)"},
    )
