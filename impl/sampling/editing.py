"""Editing loops: img2img (SDEdit) and inpainting with RePaint's resampling ([S53]–[S57]).

`edit_sample_loop_progressive` runs the reverse chain from a given image instead of from noise:

- img2img: start at level ℓ₀ = ⌊s·T + ½⌋ [S53] from x_{ℓ₀} = q_sample(x_0, ℓ₀ − 1, ε) [S54] and run the
  reverse steps ℓ₀ − 1, …, 0 (ancestral or DDIM).  s = 0 runs no step: the result is x_0 itself.
- inpainting (a ``keep`` mask): after every reverse step, arriving at level ℓ, the kept region is replaced by
  the known image at that level, q_sample(x_0, ℓ − 1, ε') with fresh ε' (x_0 itself at ℓ = 0) [S55], so the
  final sample equals x_0 in the kept region bit for bit.  With ``resample_jumps`` r > 1 the chain follows
  RePaint's jump schedule [S57] over the levels ℓ₀ … 0: an ascent ℓ → ℓ + 1 draws
  x_{ℓ+1} = √(1 − β_ℓ) x_ℓ + √β_ℓ z [S56] with the chain's own β.

It yields one dict per reverse step, the dict the plain loops yield (`sample`, `pred_xstart`, from
``diffusion.p_sample`` / ``ddim_sample`` or the step runner), with `sample` after the replacement: the state
the chain goes on from.  Ascents yield nothing.  Every draw uses ``options.generator``, in chain order: ε of
the start, then per reverse step its step noise and (with a mask) ε' of the known image, per ascent z.  The
settings (`cond_fn` guidance, `model_kwargs` labels, `clip_denoised`, `eta`, `temperature`) are the
`SamplingOptions` of the plain loops; the start is not a noise draw, so `init_temperature` must be 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, Protocol

import torch

from impl.diffusion.editing import (
    check_jump_length,
    check_mask,
    forward_step,
    jump_schedule,
    noised_to_level,
    replace_known,
    start_level,
)
from impl.diffusion.schedule import TorchTables
from impl.diffusion.steps import check_eta, check_temperature
from impl.diffusion.types import DEFAULT_OPTIONS, Model, ReverseProcess, SamplingOptions, StepRunner
from impl.sampling.loops import ancestral_step, ddim_step

__all__ = ["EditingProcess", "edit_sample_loop", "edit_sample_loop_progressive", "edit_schedule"]


class EditingProcess(ReverseProcess, Protocol):
    """A `ReverseProcess` whose tables an editing loop reads (`GaussianDiffusion` satisfies it)."""

    def tables_for(self, x: torch.Tensor) -> TorchTables:
        """The tables on x's device in x's compute dtype."""
        ...


def edit_schedule(
    num_timesteps: int, *, strength: float = 1.0, jump_length: int = 10, resample_jumps: int = 1
) -> tuple[int, ...]:
    """The levels an edit visits: RePaint's schedule [S57] over the ℓ₀ = ⌊s·T + ½⌋ [S53] levels ℓ₀ … 0
    (just ``(0,)`` at ℓ₀ = 0: nothing to run).  ``resample_jumps`` > 1 with no jump level (``jump_length``
    >= ℓ₀) is refused (`check_jump_length`), not run as the plain chain."""
    top = start_level(strength, num_timesteps)
    check_jump_length(top, jump_length, resample_jumps)
    return (0,) if top == 0 else jump_schedule(top, jump_length, resample_jumps)


def _draw(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def edit_sample_loop_progressive(
    diffusion: EditingProcess,
    model: Model,
    x_start: torch.Tensor,
    *,
    strength: float = 1.0,
    keep: torch.Tensor | None = None,
    jump_length: int = 10,
    resample_jumps: int = 1,
    use_ddim: bool = False,
    noise: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    options: SamplingOptions = DEFAULT_OPTIONS,
    step_runner: StepRunner | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield the reverse steps of an edit of ``x_start`` (B, C, H, W) in [−1, 1] (see the module docstring).

    ``keep``: None (img2img) or a mask broadcasting against x_start, 1/True where x_start is kept;
    ``noise``: the start's ε (drawn from the generator when None); ``use_ddim``: DDIM steps with
    ``options.eta`` instead of ancestral ones (which need ``options.eta == 0``).
    """
    if use_ddim:
        check_eta(options.eta)
    elif options.eta != 0.0:
        raise ValueError(f"options.eta must be 0.0 for ancestral sampling (η is DDIM's), got {options.eta}")
    check_temperature(options.temperature)
    if options.init_temperature != 1.0:
        raise ValueError(
            "options.init_temperature must be 1.0 when editing: the start is q_sample(x_0), not a noise draw"
        )
    if resample_jumps > 1 and keep is None:
        raise ValueError("resample_jumps > 1 needs a keep mask (RePaint's resampling is for inpainting)")
    levels = edit_schedule(
        diffusion.num_timesteps, strength=strength, jump_length=jump_length, resample_jumps=resample_jumps
    )
    dev = torch.device(device) if device is not None else x_start.device
    x0 = x_start.to(dev)
    mask = None if keep is None else check_mask(keep.to(dev), x0.shape, "keep")
    if noise is not None and tuple(noise.shape) != tuple(x0.shape):
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected x_start's {tuple(x0.shape)}")
    batch = x0.shape[0]
    top = levels[0]
    if top == 0:
        return
    eps = noise.to(dev) if noise is not None else _draw(x0, options.generator)
    x = noised_to_level(diffusion.tables_for(x0), x0, torch.full((batch,), top, device=dev), eps)
    zeros: list[torch.Tensor] = []  # DDIM at η = 0 through a step runner: its zero noise, reused
    bar: Any = None
    if options.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(levels) - 1)
    for here, there in itertools.pairwise(levels):
        with torch.no_grad():
            if there < here:  # a reverse step with code index `there`
                t = torch.full((batch,), there, dtype=torch.long, device=dev)
                if use_ddim:
                    out = ddim_step(diffusion, model, x, t, options, step_runner, zeros)
                else:
                    out = ancestral_step(diffusion, model, x, t, options, step_runner)
                x = out["sample"]
                if mask is not None:  # arrived at level `there`: its known image, fresh ε′ [S54], [S55]
                    known = noised_to_level(diffusion.tables_for(x0), x0, t, _draw(x0, options.generator))
                    x = replace_known(x, known, mask)
                    out = {**out, "sample": x}
            else:  # an ascent here → here + 1: the forward kernel with β at code index `here`
                t = torch.full((batch,), here, dtype=torch.long, device=dev)
                x = forward_step(diffusion.tables_for(x), x, t, _draw(x, options.generator))
                out = None
        if bar is not None:
            bar.update(1)
        if out is not None:
            yield out
    if bar is not None:
        bar.close()


def edit_sample_loop(
    diffusion: EditingProcess,
    model: Model,
    x_start: torch.Tensor,
    *,
    strength: float = 1.0,
    keep: torch.Tensor | None = None,
    jump_length: int = 10,
    resample_jumps: int = 1,
    use_ddim: bool = False,
    noise: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    options: SamplingOptions = DEFAULT_OPTIONS,
    step_runner: StepRunner | None = None,
) -> torch.Tensor:
    """The edited x_0 of `edit_sample_loop_progressive`; ``x_start`` itself when no step runs (s = 0)."""
    final = x_start.to(torch.device(device) if device is not None else x_start.device).clone()
    for step in edit_sample_loop_progressive(
        diffusion,
        model,
        x_start,
        strength=strength,
        keep=keep,
        jump_length=jump_length,
        resample_jumps=resample_jumps,
        use_ddim=use_ddim,
        noise=noise,
        device=device,
        options=options,
        step_runner=step_runner,
    ):
        final = step["sample"]
    return final
