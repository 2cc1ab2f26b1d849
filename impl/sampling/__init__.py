"""impl.sampling: the sampling and likelihood loops behind the `GaussianDiffusion` loop methods."""

from impl.sampling.bpd import calc_bpd_loop
from impl.sampling.compiled import CompiledStepRunner, StepRunner
from impl.sampling.loops import (
    ddim_sample_loop,
    ddim_sample_loop_progressive,
    p_sample_loop,
    p_sample_loop_progressive,
)

__all__: list[str] = [
    "CompiledStepRunner",
    "StepRunner",
    "calc_bpd_loop",
    "ddim_sample_loop",
    "ddim_sample_loop_progressive",
    "p_sample_loop",
    "p_sample_loop_progressive",
]
