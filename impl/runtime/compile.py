"""`torch.compile` settings of training and sampling, each defined once, and the CUDA-graph step mark.

Training compiles the network or the whole loss (``TrainConfig.compile_scope``); sampling compiles one
whole reverse step (`impl.sampling.CompiledStepRunner`).  Their backend lists differ, so each has its own
name: sampling also accepts ``"cudagraphs"``, which replays eager kernels as CUDA graphs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "COMPILE_MODES",
    "COMPILE_SCOPES",
    "CUDA_GRAPH_MODES",
    "SAMPLING_COMPILE_BACKENDS",
    "TRAINING_COMPILE_BACKENDS",
    "check_sampling_compile_backend",
    "mark_cuda_graph_step_begin",
]

COMPILE_SCOPES: tuple[str, ...] = ("model", "loss")
"""What training's ``compile=True`` hands to torch.compile: the network alone, or the whole per-sample loss
function (q_sample → network → L_simple / L_vlb / L_hybrid) as one graph."""

TRAINING_COMPILE_BACKENDS: tuple[str, ...] = ("inductor", "aot_eager", "eager")
"""The torch.compile backends ``TrainConfig.compile_backend`` (``iddpm train --compile_backend``) accepts."""

SAMPLING_COMPILE_BACKENDS: tuple[str, ...] = (*TRAINING_COMPILE_BACKENDS, "cudagraphs")
"""The torch.compile backends ``iddpm sample --compile_backend`` accepts for its compiled reverse step."""

COMPILE_MODES: tuple[str, ...] = (
    "",
    "default",
    "reduce-overhead",
    "max-autotune",
    "max-autotune-no-cudagraphs",
)
"""torch.compile modes: ``""`` leaves the mode unset (torch's default); the named modes are inductor's."""

CUDA_GRAPH_MODES: tuple[str, ...] = ("reduce-overhead", "max-autotune")
"""The torch.compile modes that replay the compiled function as a CUDA graph on CUDA."""

mark_cuda_graph_step_begin: Callable[[], None] = torch.compiler.cudagraph_mark_step_begin
"""Begin a new CUDA-graph step: outputs of the previous replay may be overwritten from here on."""


def check_sampling_compile_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`SAMPLING_COMPILE_BACKENDS`, else a ValueError naming it."""
    if backend not in SAMPLING_COMPILE_BACKENDS:
        allowed = ", ".join(SAMPLING_COMPILE_BACKENDS)
        raise ValueError(f"compile_backend must be one of {allowed}; got {backend!r}")
    return backend
