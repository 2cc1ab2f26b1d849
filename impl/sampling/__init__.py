"""impl.sampling: the sampling and likelihood loops behind the `GaussianDiffusion` loop methods.

They depend on the process only through the protocols of `impl.diffusion.types` and take their shared
settings as one `SamplingOptions`.
"""

from impl.diffusion.types import SamplingOptions, StepRunner
from impl.sampling.bpd import calc_bpd_loop
from impl.sampling.compiled import CompiledStepRunner
from impl.sampling.loops import (
    ddim_reverse_sample_loop,
    ddim_sample_loop,
    ddim_sample_loop_progressive,
    p_sample_loop,
    p_sample_loop_progressive,
)

__all__: list[str] = [
    "CompiledStepRunner",
    "SamplingOptions",
    "StepRunner",
    "calc_bpd_loop",
    "ddim_reverse_sample_loop",
    "ddim_sample_loop",
    "ddim_sample_loop_progressive",
    "p_sample_loop",
    "p_sample_loop_progressive",
]
