"""What the sampling side sees of a diffusion: the callable aliases, the process protocols, the options.

This module sits below both `GaussianDiffusion` (which satisfies the protocols and builds the options
from its public keyword arguments) and `impl.sampling` (whose loops, bound loop and compiled step runner
depend only on the names here), so neither knows the other's internals and the import graph has no
circle: `impl.diffusion.gaussian_diffusion` → `impl.sampling.methods` → `impl.sampling.loops` →
`impl.diffusion.types`, and nothing in `impl.sampling` imports the class (import-linter contract
"sampling-protocol" in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from impl.diffusion.schedule import TorchTables

__all__ = [
    "DEFAULT_OPTIONS",
    "CondFn",
    "DenoisedFn",
    "LikelihoodProcess",
    "Model",
    "ReverseProcess",
    "SamplingOptions",
    "StepRunner",
]

Model = Callable[..., torch.Tensor]
"""The network: ``model(x_t, t_model, **model_kwargs)`` → its output (ε̂, x̂_0 or μ̂, plus variance channels)."""

CondFn = Callable[..., torch.Tensor]
"""A guidance gradient: ``cond_fn(x_t, t_model, **model_kwargs)`` → ∇_x log p(y|x_t), shaped like x_t."""

DenoisedFn = Callable[[torch.Tensor], torch.Tensor]
"""Applied to the predicted x̂_0 before it is clipped to [−1, 1]."""


@dataclass(frozen=True, kw_only=True)
class SamplingOptions:
    """The settings every reverse step and loop shares (the original's repeated keyword arguments).

    clip_denoised: clip x̂_0 to [−1, 1]; denoised_fn: applied to x̂_0 first; cond_fn: guidance gradient
    (SPEC §7); model_kwargs: passed to the model and to cond_fn; eta: DDIM's stochasticity η [S30] (0 for
    the ancestral loops); progress: show a tqdm bar over the timesteps; generator: every random draw;
    temperature: τ scaling each step's noise [S45] (ancestral, DDIM η > 0); init_temperature: τ₀ scaling the
    starting noise, x_T = τ₀·z [S46].  τ = τ₀ = 1 (the defaults) is the untempered sampler bit for bit.
    """

    clip_denoised: bool = True
    denoised_fn: DenoisedFn | None = None
    cond_fn: CondFn | None = None
    model_kwargs: dict[str, Any] | None = None
    eta: float = 0.0
    progress: bool = False
    generator: torch.Generator | None = None
    temperature: float = 1.0
    init_temperature: float = 1.0


DEFAULT_OPTIONS = SamplingOptions()
"""The original's defaults: clip x̂_0, no denoised_fn, no guidance, no kwargs, η = 0, no bar, global RNG."""


class ReverseProcess(Protocol):
    """The steps a sampling loop and a step runner call (`GaussianDiffusion` satisfies it)."""

    num_timesteps: int

    def prepare_device_caches(self, x: torch.Tensor) -> None:
        """Build every lazily cached device tensor a step on ``x`` reads (before a compile traces one)."""
        ...

    def p_sample(
        self,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = ...,
        denoised_fn: DenoisedFn | None = ...,
        cond_fn: CondFn | None = ...,
        model_kwargs: dict[str, Any] | None = ...,
        noise: torch.Tensor | None = ...,
        *,
        generator: torch.Generator | None = ...,
    ) -> dict[str, torch.Tensor]:
        """One ancestral step x_t → x_{t−1} [S29]: keys sample, pred_xstart."""
        ...

    def ddim_sample(
        self,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = ...,
        denoised_fn: DenoisedFn | None = ...,
        cond_fn: CondFn | None = ...,
        model_kwargs: dict[str, Any] | None = ...,
        eta: float = ...,
        noise: torch.Tensor | None = ...,
        *,
        generator: torch.Generator | None = ...,
    ) -> dict[str, torch.Tensor]:
        """One DDIM step x_t → x_{t−1} with stochasticity η [S30]: keys sample, pred_xstart."""
        ...

    def ddim_reverse_sample(
        self,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = ...,
        denoised_fn: DenoisedFn | None = ...,
        model_kwargs: dict[str, Any] | None = ...,
        eta: float = ...,
    ) -> dict[str, torch.Tensor]:
        """One deterministic DDIM inversion step x_t → x_{t+1} [S31]: keys sample, pred_xstart."""
        ...


class LikelihoodProcess(Protocol):
    """What the full-bound loop `calc_bpd_loop` calls (`GaussianDiffusion` satisfies it)."""

    num_timesteps: int

    def tables_for(self, x: torch.Tensor) -> TorchTables:
        """The tables on x's device in x's compute dtype."""
        ...

    def q_sample(
        self,
        x_start: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor | None = ...,
        *,
        generator: torch.Generator | None = ...,
    ) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε [S6]."""
        ...

    def vb_terms_bpd(
        self,
        model: Model,
        x_start: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = ...,
        model_kwargs: dict[str, Any] | None = ...,
    ) -> dict[str, torch.Tensor]:
        """The VLB term at t in bits/dim [S18]: keys output (B,), pred_xstart."""
        ...

    def prior_bpd(self, x_start: torch.Tensor) -> torch.Tensor:
        """The prior term L_T in bits/dim [S19], shape (B,)."""
        ...


class StepRunner(Protocol):
    """Runs one reverse step with the step noise given (never drawn inside); e.g. `CompiledStepRunner`."""

    def ancestral_step(
        self,
        diffusion: ReverseProcess,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        options: SamplingOptions,
    ) -> dict[str, torch.Tensor]:
        """`diffusion.p_sample(...)` with `noise` as the step's z [S29]."""
        ...

    def ddim_step(
        self,
        diffusion: ReverseProcess,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        options: SamplingOptions,
    ) -> dict[str, torch.Tensor]:
        """`diffusion.ddim_sample(...)` with `noise` as the step's z and `options.eta` [S30]."""
        ...
