"""A compiled / CUDA-graph runner for one whole reverse step (network + p_mean_variance + noise add).

`CompiledStepRunner` wraps `GaussianDiffusion.p_sample` / `ddim_sample` (the same functions the eager
loops call: the step's math exists once) in `torch.compile` for fixed shapes.  The step noise is an
input: the loops draw it from their generator outside the compiled region, in the order and dtype the
eager step draws it, so an accelerated loop reproduces the eager loop for the same generator.  On CUDA
the default mode is "reduce-overhead", which replays the step as a CUDA graph.  A sampling temperature
τ [S45] needs nothing here: the loop passes the tempered noise τ·z in as the step's noise input, so one
compiled step serves every τ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from impl.diffusion.types import Model, ReverseProcess, SamplingOptions, StepRunner
from impl.runtime.compile import CUDA_GRAPH_MODES, mark_cuda_graph_step_begin

__all__ = ["CompiledStepRunner", "StepRunner"]

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]], dict[str, torch.Tensor]]


class CompiledStepRunner:
    """Runs each reverse step through one `torch.compile`d function per (kind, diffusion, model, options).

    backend: a `torch.compile` backend ("inductor" by default; "eager" or "aot_eager" trace without code
    generation, "cudagraphs" replays eager kernels as CUDA graphs).  mode: a `torch.compile` mode; by
    default "reduce-overhead" (CUDA graphs) for CUDA inputs with the inductor backend, none otherwise.
    fullgraph (default True) makes any graph break an error; dynamic=False compiles for fixed shapes.

    Under a CUDA-graph mode each step begins a new graph step and the returned tensors are cloned out of
    the graph's memory pool, so yielded step dicts stay valid after later steps.  The network must be
    traceable by dynamo (a guidance `cond_fn` that calls autograd needs fullgraph=False).  A model whose
    output dtype differs from the compute dtype of x (float64 for float64 x, else float32) is rejected:
    the eager step would draw its noise in that other dtype.
    """

    def __init__(
        self,
        *,
        backend: str | Callable[..., Any] = "inductor",
        mode: str | None = None,
        fullgraph: bool = True,
        dynamic: bool | None = False,
    ) -> None:
        if isinstance(backend, str) and not backend:
            raise ValueError("backend must be a torch.compile backend name or callable, got ''")
        self.backend = backend
        self.mode = mode
        self.fullgraph = fullgraph
        self.dynamic = dynamic
        self._compiled: dict[tuple[Any, ...], tuple[Step, bool]] = {}

    def _mode_for(self, device: torch.device) -> str | None:
        if self.mode is not None:
            return self.mode
        if device.type == "cuda" and self.backend == "inductor":
            return "reduce-overhead"
        return None

    def _compile(self, step: Step, device: torch.device) -> tuple[Step, bool]:
        mode = self._mode_for(device)
        compiled: Step = torch.compile(
            step, backend=self.backend, mode=mode, fullgraph=self.fullgraph, dynamic=self.dynamic
        )
        graphs = mode in CUDA_GRAPH_MODES or self.backend == "cudagraphs"
        uses_cuda_graphs = device.type == "cuda" and graphs
        return compiled, uses_cuda_graphs

    def _run(
        self,
        diffusion: ReverseProcess,
        key: tuple[Any, ...],
        make: Callable[[], Step],
        x: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        model_kwargs: dict[str, Any] | None,
    ) -> dict[str, torch.Tensor]:
        # Build the diffusion's device caches for x eagerly: created inside the first trace, a cache entry
        # would fail that trace's guard on the next step and force a recompile (a second CUDA-graph capture).
        diffusion.prepare_device_caches(x)
        entry = self._compiled.get(key)
        if entry is None:
            entry = self._compile(make(), x.device)
            self._compiled[key] = entry
        compiled, uses_cuda_graphs = entry
        if uses_cuda_graphs:
            mark_cuda_graph_step_begin()
        out = compiled(x, t, noise, dict(model_kwargs or {}))
        if out["sample"].dtype != noise.dtype:
            raise ValueError(
                f"the step computed in {out['sample'].dtype} but its noise was drawn in {noise.dtype}: the "
                "model's output dtype must not promote the compute dtype of x (float64 for float64 x, "
                "else float32) when a step_runner is used"
            )
        if uses_cuda_graphs:
            out = {name: value.clone() for name, value in out.items()}
        return out

    def ancestral_step(
        self,
        diffusion: ReverseProcess,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        options: SamplingOptions,
    ) -> dict[str, torch.Tensor]:
        """`diffusion.p_sample(model, x, t, ..., noise=noise)` [S29], compiled once per configuration."""
        # The traced step closes over the settings themselves (not the options object, whose model_kwargs
        # and generator it must not see): model_kwargs are a traced input, the noise is drawn outside.
        clip_denoised, denoised_fn, cond_fn = options.clip_denoised, options.denoised_fn, options.cond_fn

        def make() -> Step:
            def step(
                x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, kwargs: dict[str, Any]
            ) -> dict[str, torch.Tensor]:
                return diffusion.p_sample(model, x, t, clip_denoised, denoised_fn, cond_fn, kwargs, noise)

            return step

        key = ("ancestral", diffusion, model, clip_denoised, denoised_fn, cond_fn)
        return self._run(diffusion, key, make, x, t, noise, options.model_kwargs)

    def ddim_step(
        self,
        diffusion: ReverseProcess,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        options: SamplingOptions,
    ) -> dict[str, torch.Tensor]:
        """`diffusion.ddim_sample(model, x, t, ..., eta, noise=noise)` [S30], compiled once per setting."""
        clip_denoised, denoised_fn, cond_fn = options.clip_denoised, options.denoised_fn, options.cond_fn
        eta = options.eta

        def make() -> Step:
            def step(
                x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, kwargs: dict[str, Any]
            ) -> dict[str, torch.Tensor]:
                return diffusion.ddim_sample(
                    model, x, t, clip_denoised, denoised_fn, cond_fn, kwargs, eta, noise
                )

            return step

        key = ("ddim", diffusion, model, clip_denoised, denoised_fn, cond_fn, float(eta))
        return self._run(diffusion, key, make, x, t, noise, options.model_kwargs)
