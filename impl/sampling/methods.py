"""The loop methods of `GaussianDiffusion`, with the original improved-diffusion keyword signatures.

`SamplingLoopMethods` is a mixin: each method takes the process as a `ReverseProcess` (or, for the bound,
a `LikelihoodProcess`) of `impl.diffusion.types`, builds one `SamplingOptions` from its keyword arguments
and hands it to the loop functions of `impl.sampling.loops` / `impl.sampling.bpd`.  `GaussianDiffusion`
inherits it, so the class exposes the loops as methods while this package never imports the class.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from impl.diffusion.types import (
    CondFn,
    DenoisedFn,
    LikelihoodProcess,
    Model,
    ReverseProcess,
    SamplingOptions,
    StepRunner,
)
from impl.sampling import bpd, loops

__all__ = ["SamplingLoopMethods"]


class SamplingLoopMethods:
    """`p_sample_loop`, `ddim_sample_loop`, their progressive forms, `ddim_reverse_sample_loop` and
    `calc_bpd_loop` as methods.  ``temperature`` τ scales each step's noise [S45], ``init_temperature`` τ₀
    the starting noise [S46]; 1.0 (the default) leaves sampling unchanged bit for bit."""

    def p_sample_loop(
        self: ReverseProcess,
        model: Model,
        shape: Sequence[int],
        noise: torch.Tensor | None = None,
        clip_denoised: bool = True,
        denoised_fn: DenoisedFn | None = None,
        cond_fn: CondFn | None = None,
        model_kwargs: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
        *,
        generator: torch.Generator | None = None,
        step_runner: StepRunner | None = None,
        temperature: float = 1.0,
        init_temperature: float = 1.0,
    ) -> torch.Tensor:
        """Ancestral sampling from x_T to x_0 [S29]; returns the final sample."""
        options = SamplingOptions(
            clip_denoised=clip_denoised,
            denoised_fn=denoised_fn,
            cond_fn=cond_fn,
            model_kwargs=model_kwargs,
            progress=progress,
            generator=generator,
            temperature=temperature,
            init_temperature=init_temperature,
        )
        return loops.p_sample_loop(
            self, model, shape, noise=noise, device=device, options=options, step_runner=step_runner
        )

    def p_sample_loop_progressive(
        self: ReverseProcess,
        model: Model,
        shape: Sequence[int],
        noise: torch.Tensor | None = None,
        clip_denoised: bool = True,
        denoised_fn: DenoisedFn | None = None,
        cond_fn: CondFn | None = None,
        model_kwargs: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
        *,
        generator: torch.Generator | None = None,
        step_runner: StepRunner | None = None,
        temperature: float = 1.0,
        init_temperature: float = 1.0,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Ancestral sampling, yielding each step's p_sample dict."""
        options = SamplingOptions(
            clip_denoised=clip_denoised,
            denoised_fn=denoised_fn,
            cond_fn=cond_fn,
            model_kwargs=model_kwargs,
            progress=progress,
            generator=generator,
            temperature=temperature,
            init_temperature=init_temperature,
        )
        return loops.p_sample_loop_progressive(
            self, model, shape, noise=noise, device=device, options=options, step_runner=step_runner
        )

    def ddim_sample_loop(
        self: ReverseProcess,
        model: Model,
        shape: Sequence[int],
        noise: torch.Tensor | None = None,
        clip_denoised: bool = True,
        denoised_fn: DenoisedFn | None = None,
        cond_fn: CondFn | None = None,
        model_kwargs: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
        eta: float = 0.0,
        *,
        generator: torch.Generator | None = None,
        step_runner: StepRunner | None = None,
        temperature: float = 1.0,
        init_temperature: float = 1.0,
    ) -> torch.Tensor:
        """DDIM sampling from x_T to x_0 [S30]; returns the final sample."""
        options = SamplingOptions(
            clip_denoised=clip_denoised,
            denoised_fn=denoised_fn,
            cond_fn=cond_fn,
            model_kwargs=model_kwargs,
            eta=eta,
            progress=progress,
            generator=generator,
            temperature=temperature,
            init_temperature=init_temperature,
        )
        return loops.ddim_sample_loop(
            self, model, shape, noise=noise, device=device, options=options, step_runner=step_runner
        )

    def ddim_sample_loop_progressive(
        self: ReverseProcess,
        model: Model,
        shape: Sequence[int],
        noise: torch.Tensor | None = None,
        clip_denoised: bool = True,
        denoised_fn: DenoisedFn | None = None,
        cond_fn: CondFn | None = None,
        model_kwargs: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
        eta: float = 0.0,
        *,
        generator: torch.Generator | None = None,
        step_runner: StepRunner | None = None,
        temperature: float = 1.0,
        init_temperature: float = 1.0,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """DDIM sampling, yielding each step's ddim_sample dict."""
        options = SamplingOptions(
            clip_denoised=clip_denoised,
            denoised_fn=denoised_fn,
            cond_fn=cond_fn,
            model_kwargs=model_kwargs,
            eta=eta,
            progress=progress,
            generator=generator,
            temperature=temperature,
            init_temperature=init_temperature,
        )
        return loops.ddim_sample_loop_progressive(
            self, model, shape, noise=noise, device=device, options=options, step_runner=step_runner
        )

    def ddim_reverse_sample_loop(
        self: ReverseProcess,
        model: Model,
        x0: torch.Tensor,
        clip_denoised: bool = True,
        denoised_fn: DenoisedFn | None = None,
        model_kwargs: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """DDIM inversion x_0 → x_T at η = 0 [S47]: `ddim_reverse_sample` for t = 0 … T−1; returns x_T."""
        options = SamplingOptions(
            clip_denoised=clip_denoised, denoised_fn=denoised_fn, model_kwargs=model_kwargs, progress=progress
        )
        return loops.ddim_reverse_sample_loop(self, model, x0, device=device, options=options)

    def calc_bpd_loop(
        self: LikelihoodProcess,
        model: Model,
        x_start: torch.Tensor,
        clip_denoised: bool = True,
        model_kwargs: dict[str, Any] | None = None,
        noise: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        timestep_batch: int = 1,
    ) -> dict[str, torch.Tensor]:
        """The full bound [S20]: keys total_bpd, prior_bpd (B,), vb, xstart_mse, mse (B, T).

        ``timestep_batch=k`` evaluates k timesteps per network call (see `impl.sampling.bpd`).
        """
        return bpd.calc_bpd_loop(
            self,
            model,
            x_start,
            clip_denoised,
            model_kwargs,
            noise,
            generator=generator,
            timestep_batch=timestep_batch,
        )
