"""Sampling loops from x_T down to x_0: ancestral [S29] and DDIM [S30], plain and progressive; DDIM
inversion from x_0 up to x_T [S31], [S47].

Temperature: `options.temperature` τ multiplies each step's noise z [S45] and `options.init_temperature` τ₀
the starting noise [S46].  At τ = 1 the loops take exactly the untempered path (the step draws its own
noise), so τ = τ₀ = 1 is today's sampling bit for bit; at τ ≠ 1 the loop draws z as the step would and
passes τ·z in.

Exposed as `GaussianDiffusion` methods, which keep the original keyword signatures and pass their settings
here as one `SamplingOptions`.  The loops see the process only through `ReverseProcess`.  The timestep
tensor of each step is created on the device (`torch.full`), so a loop issues no host synchronisation of
its own; every draw uses `options.generator`.  With a `step_runner` (e.g.
`impl.sampling.compiled.CompiledStepRunner`) each step runs through it: the step noise is drawn here,
before the step, with the shape, dtype and generator the eager step uses, and passed in, so the
accelerated loop reproduces the eager one for the same generator.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch

from impl.diffusion.schedule import compute_dtype
from impl.diffusion.steps import check_eta, check_temperature
from impl.diffusion.types import DEFAULT_OPTIONS, Model, ReverseProcess, SamplingOptions, StepRunner

__all__ = [
    "ancestral_step",
    "ddim_reverse_sample_loop",
    "ddim_reverse_sample_loop_progressive",
    "ddim_sample_loop",
    "ddim_sample_loop_progressive",
    "ddim_step",
    "final_sample",
    "p_sample_loop",
    "p_sample_loop_progressive",
    "resolve_device",
    "step_noise",
]


def resolve_device(
    model: Model,
    device: torch.device | str | None,
    noise: torch.Tensor | None,
    generator: torch.Generator | None,
) -> torch.device:
    """The sampling device: `device`, else the noise's, else the model's parameters', else the generator's."""
    if device is not None:
        return torch.device(device)
    if noise is not None:
        return noise.device
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        for parameter in parameters():
            if isinstance(parameter, torch.Tensor):
                return parameter.device
    if generator is not None:
        return generator.device
    return torch.device("cpu")


def initial_noise(
    shape: Sequence[int],
    noise: torch.Tensor | None,
    device: torch.device,
    generator: torch.Generator | None,
    init_temperature: float = 1.0,
) -> torch.Tensor:
    """x_T = τ₀·z [S46]: z the given `noise` (shape-checked) or a float32 standard normal draw."""
    check_temperature(init_temperature, "init_temperature")
    if noise is not None:
        if tuple(noise.shape) != tuple(shape):
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected shape {tuple(shape)}")
        z = noise.to(device)
    else:
        z = torch.randn(tuple(shape), generator=generator, device=device)
    return z if init_temperature == 1.0 else init_temperature * z


def tempered_step_noise(
    x: torch.Tensor, generator: torch.Generator | None, temperature: float
) -> torch.Tensor | None:
    """τ·z [S45] for a step at x (z as `step_noise` draws it), or None at τ = 1: the step draws z itself."""
    if temperature == 1.0:
        return None
    return temperature * step_noise(x, generator)


def step_noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The z an eager step at x draws: a standard normal of x's shape in x's compute dtype."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=compute_dtype(x.dtype))


@torch.no_grad()
def ancestral_step(
    diffusion: ReverseProcess,
    model: Model,
    x: torch.Tensor,
    t: torch.Tensor,
    options: SamplingOptions,
    step_runner: StepRunner | None = None,
) -> dict[str, torch.Tensor]:
    """One ancestral step [S29] of a loop: eager (at τ = 1 the step draws its own z), or through
    ``step_runner`` with the z the eager step would draw (τ·z at temperature τ [S45])."""
    tempered = tempered_step_noise(x, options.generator, options.temperature)
    if step_runner is None:
        return diffusion.p_sample(
            model,
            x,
            t,
            options.clip_denoised,
            options.denoised_fn,
            options.cond_fn,
            options.model_kwargs,
            tempered,
            generator=options.generator,
        )
    z = step_noise(x, options.generator) if tempered is None else tempered
    return step_runner.ancestral_step(diffusion, model, x, t, z, options)


@torch.no_grad()
def ddim_step(
    diffusion: ReverseProcess,
    model: Model,
    x: torch.Tensor,
    t: torch.Tensor,
    options: SamplingOptions,
    step_runner: StepRunner | None = None,
    zeros: list[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """One DDIM step [S30] of a loop, as `ancestral_step`; at η = 0 there is no noise to temper and a step
    runner is handed zeros (kept in ``zeros``, a one-element cache, to reuse across steps)."""
    # σ = 0 at η = 0: there is no step noise to temper.
    tempered = tempered_step_noise(x, options.generator, options.temperature) if options.eta != 0.0 else None
    if step_runner is None:
        return diffusion.ddim_sample(
            model,
            x,
            t,
            options.clip_denoised,
            options.denoised_fn,
            options.cond_fn,
            options.model_kwargs,
            options.eta,
            tempered,
            generator=options.generator,
        )
    if options.eta == 0.0:  # σ = 0: the eager step draws nothing and uses zeros
        cache = [] if zeros is None else zeros
        if not cache or cache[0].dtype != compute_dtype(x.dtype) or cache[0].shape != x.shape:
            cache[:] = [torch.zeros(x.shape, device=x.device, dtype=compute_dtype(x.dtype))]
        z = cache[0]
    else:
        z = step_noise(x, options.generator) if tempered is None else tempered
    return step_runner.ddim_step(diffusion, model, x, t, z, options)


def _timesteps(num_timesteps: int, progress: bool, *, forward: bool = False) -> Iterable[int]:
    """T−1 … 0 (the reverse process), or 0 … T−1 with ``forward`` (DDIM inversion); a tqdm bar if asked."""
    indices: Iterable[int] = range(num_timesteps) if forward else range(num_timesteps - 1, -1, -1)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(list(indices))
    return indices


def p_sample_loop_progressive(
    diffusion: ReverseProcess,
    model: Model,
    shape: Sequence[int],
    *,
    noise: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    options: SamplingOptions = DEFAULT_OPTIONS,
    step_runner: StepRunner | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield `p_sample` outputs for t = T−1 … 0, starting from `noise` or a draw from the generator."""
    if options.eta != 0.0:
        raise ValueError(f"options.eta must be 0.0 for ancestral sampling (η is DDIM's), got {options.eta}")
    check_temperature(options.temperature)
    dev = resolve_device(model, device, noise, options.generator)
    x = initial_noise(shape, noise, dev, options.generator, options.init_temperature)
    for i in _timesteps(diffusion.num_timesteps, options.progress):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=dev)
        out = ancestral_step(diffusion, model, x, t, options, step_runner)
        yield out
        x = out["sample"]


def ddim_sample_loop_progressive(
    diffusion: ReverseProcess,
    model: Model,
    shape: Sequence[int],
    *,
    noise: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    options: SamplingOptions = DEFAULT_OPTIONS,
    step_runner: StepRunner | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield `ddim_sample` outputs for t = T−1 … 0 (η = 0: deterministic given x_T)."""
    check_eta(options.eta)
    check_temperature(options.temperature)
    dev = resolve_device(model, device, noise, options.generator)
    x = initial_noise(shape, noise, dev, options.generator, options.init_temperature)
    zeros: list[torch.Tensor] = []  # η = 0 through a step runner: one zero noise tensor for every step
    for i in _timesteps(diffusion.num_timesteps, options.progress):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=dev)
        out = ddim_step(diffusion, model, x, t, options, step_runner, zeros)
        yield out
        x = out["sample"]


def ddim_reverse_sample_loop_progressive(
    diffusion: ReverseProcess,
    model: Model,
    x0: torch.Tensor,
    *,
    device: torch.device | str | None = None,
    options: SamplingOptions = DEFAULT_OPTIONS,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield `ddim_reverse_sample` outputs for t = 0 … T−1 from x_0 (DDIM inversion at η = 0 [S47]).

    The step at t returns x_{t+1}; the last yielded sample is the latent x_T.  The inversion is
    deterministic: `options.eta` must be 0 and the temperatures 1 (nothing is drawn to temper).
    """
    if options.eta != 0.0:
        raise ValueError(
            f"options.eta must be 0.0 for DDIM inversion (it is deterministic), got {options.eta}"
        )
    if options.temperature != 1.0 or options.init_temperature != 1.0:
        raise ValueError("options.temperature and options.init_temperature must be 1.0 for DDIM inversion")
    if options.cond_fn is not None:
        raise ValueError("options.cond_fn is not supported by DDIM inversion; pass cond_fn=None")
    dev = torch.device(device) if device is not None else x0.device
    x = x0.to(dev)
    for i in _timesteps(diffusion.num_timesteps, options.progress, forward=True):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=dev)
        with torch.no_grad():
            out = diffusion.ddim_reverse_sample(
                model, x, t, options.clip_denoised, options.denoised_fn, options.model_kwargs
            )
        yield out
        x = out["sample"]


def ddim_reverse_sample_loop(
    diffusion: ReverseProcess,
    model: Model,
    x0: torch.Tensor,
    *,
    device: torch.device | str | None = None,
    options: SamplingOptions = DEFAULT_OPTIONS,
) -> torch.Tensor:
    """The latent x_T of `ddim_reverse_sample_loop_progressive` (x_0 → x_T, η = 0 [S47])."""
    return final_sample(
        ddim_reverse_sample_loop_progressive(diffusion, model, x0, device=device, options=options)
    )


def final_sample(steps: Iterator[dict[str, torch.Tensor]]) -> torch.Tensor:
    """The sample of the last step of a progressive loop."""
    final: dict[str, torch.Tensor] | None = None
    for step in steps:
        final = step
    if final is None:
        raise ValueError("the diffusion has no timesteps to sample")
    return final["sample"]


def p_sample_loop(
    diffusion: ReverseProcess,
    model: Model,
    shape: Sequence[int],
    *,
    noise: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    options: SamplingOptions = DEFAULT_OPTIONS,
    step_runner: StepRunner | None = None,
) -> torch.Tensor:
    """The final sample x_0 of `p_sample_loop_progressive`."""
    steps = p_sample_loop_progressive(
        diffusion, model, shape, noise=noise, device=device, options=options, step_runner=step_runner
    )
    return final_sample(steps)


def ddim_sample_loop(
    diffusion: ReverseProcess,
    model: Model,
    shape: Sequence[int],
    *,
    noise: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    options: SamplingOptions = DEFAULT_OPTIONS,
    step_runner: StepRunner | None = None,
) -> torch.Tensor:
    """The final sample x_0 of `ddim_sample_loop_progressive`."""
    steps = ddim_sample_loop_progressive(
        diffusion, model, shape, noise=noise, device=device, options=options, step_runner=step_runner
    )
    return final_sample(steps)
