"""Hypothesis strategies for the property suite: processes, timesteps, tiny shapes and seeded arrays.

Arrays are never drawn element by element: a case carries a seed and `case_arrays` expands it with a
NumPy generator, so shrinking stays cheap and every failure is reproducible from the printed case.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

STEP_COUNTS = (1, 2, 10, 1000, 4000)
LINEAR_MIN_STEPS = 20
MEAN_TYPES = ("EPSILON", "START_X", "PREVIOUS_X", "VELOCITY")
VAR_TYPES = ("LEARNED", "FIXED_SMALL", "FIXED_LARGE", "LEARNED_RANGE")
LOSS_TYPES = ("MSE", "RESCALED_MSE", "KL", "RESCALED_KL")
RESPACED_LENGTHS = (1, 2, 10)
LOSS_WEIGHTINGS = ("none", "min_snr")
MIN_SNR_GAMMAS = (0.5, 5.0)  # below and at the usual γ: both branches of min(SNR, γ) occur
VLB_WEIGHTS = (None, 0.0, 1e-3, 0.37)  # None: the loss type's own weight


@dataclass(frozen=True)
class ProcessSpec:
    """A diffusion process: schedule, base length, optional kept steps (respaced) and the model types."""

    schedule: str
    base_steps: int
    kept: tuple[int, ...] | None
    mean_type: str
    var_type: str
    loss_type: str
    rescale_timesteps: bool
    loss_weighting: str = "none"
    min_snr_gamma: float = 5.0
    vlb_weight: float | None = None

    @property
    def num_timesteps(self) -> int:
        """T of the (possibly respaced) process."""
        return len(self.kept) if self.kept is not None else self.base_steps

    @property
    def learned_variance(self) -> bool:
        """True when the model outputs 2C channels."""
        return self.var_type in ("LEARNED", "LEARNED_RANGE")


@st.composite
def schedules_and_lengths(draw: st.DrawFn) -> tuple[str, int]:
    """(schedule name, T) with T in {1, 2, 10, 1000, 4000}; linear only where T >= 20 [S1]."""
    steps = draw(st.sampled_from(STEP_COUNTS))
    names = ("linear", "cosine") if steps >= LINEAR_MIN_STEPS else ("cosine",)
    return draw(st.sampled_from(names)), steps


@st.composite
def processes(draw: st.DrawFn, max_steps: int | None = None) -> ProcessSpec:
    """A plain or respaced process with any mean × variance × loss type; at most `max_steps` steps."""
    schedule, base = draw(schedules_and_lengths())
    kept: tuple[int, ...] | None = None
    respace = draw(st.booleans()) if base > 1 else False
    if max_steps is not None and base > max_steps:
        respace = True
    if respace:
        lengths = [n for n in RESPACED_LENGTHS if n <= base and (max_steps is None or n <= max_steps)]
        length = draw(st.sampled_from(lengths))
        if draw(st.booleans()):
            # Even spacing including the ends, as a respacing spec would give.
            kept = tuple(sorted({round(i * (base - 1) / max(length - 1, 1)) for i in range(length)}))
        else:
            steps = draw(st.lists(st.integers(0, base - 1), min_size=length, max_size=length, unique=True))
            kept = tuple(sorted(steps))
    mean_type = draw(st.sampled_from(MEAN_TYPES))
    var_type = draw(st.sampled_from(VAR_TYPES))
    loss_type = draw(st.sampled_from(LOSS_TYPES))
    mse_loss = loss_type in ("MSE", "RESCALED_MSE")
    weighting = "none"
    if mse_loss and mean_type != "PREVIOUS_X":
        weighting = draw(st.sampled_from(LOSS_WEIGHTINGS))  # min-SNR-γ [S43]
    vlb_weight = None
    if mse_loss and var_type in ("LEARNED", "LEARNED_RANGE"):
        vlb_weight = draw(st.sampled_from(VLB_WEIGHTS))  # λ of L_hybrid [S44]
    return ProcessSpec(
        schedule=schedule,
        base_steps=base,
        kept=kept,
        mean_type=mean_type,
        var_type=var_type,
        loss_type=loss_type,
        rescale_timesteps=draw(st.booleans()),
        loss_weighting=weighting,
        min_snr_gamma=draw(st.sampled_from(MIN_SNR_GAMMAS)) if weighting == "min_snr" else 5.0,
        vlb_weight=vlb_weight,
    )


def timesteps(num_timesteps: int, batch: int) -> st.SearchStrategy[tuple[int, ...]]:
    """(B,) timesteps, each weighted toward 0, 1, T−2, T−1 and otherwise uniform."""
    last = num_timesteps - 1
    edges = sorted({min(max(v, 0), last) for v in (0, 1, last - 1, last)})
    one = st.one_of(st.sampled_from(edges), st.integers(0, last))
    return st.tuples(*([one] * batch))


SHAPES = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3))
SEEDS = st.integers(0, 2**32 - 1)


@dataclass(frozen=True)
class StepCase:
    """Inputs of one per-step call: a process, timesteps, a shape, a seed for the arrays and the options."""

    process: ProcessSpec
    shape: tuple[int, ...]
    t: tuple[int, ...]
    seed: int
    clip_denoised: bool
    use_denoised_fn: bool
    use_cond_fn: bool
    eta: float


@st.composite
def step_cases(draw: st.DrawFn, max_steps: int | None = None) -> StepCase:
    """A `StepCase` over any process (respaced or plain), t at the edges or random."""
    process = draw(processes(max_steps=max_steps))
    shape = draw(SHAPES)
    return StepCase(
        process=process,
        shape=shape,
        t=draw(timesteps(process.num_timesteps, shape[0])),
        seed=draw(SEEDS),
        clip_denoised=draw(st.booleans()),
        use_denoised_fn=draw(st.booleans()),
        use_cond_fn=draw(st.booleans()),
        eta=draw(st.sampled_from((0.0, 0.5, 1.0))),
    )


@dataclass(frozen=True)
class CaseArrays:
    """The float64 arrays of a `StepCase`: data on the 8-bit grid, noises, a model output, a gradient."""

    x_start: FloatArray
    noise: FloatArray
    step_noise: FloatArray
    model_output: FloatArray
    grad: FloatArray


def pixel_grid(rng: np.random.Generator, shape: tuple[int, ...]) -> FloatArray:
    """8-bit data p/127.5 − 1, with the edge values ±1 over-represented (they use the open-ended bins)."""
    pixels = rng.integers(0, 256, size=shape)
    edges = rng.random(shape) < 0.2
    pixels = np.where(edges, rng.choice(np.array([0, 255]), size=shape), pixels)
    return np.asarray(pixels / 127.5 - 1.0, dtype=np.float64)


@lru_cache(maxsize=4096)
def case_arrays(case: StepCase) -> CaseArrays:
    """Expand the case's seed into its arrays (deterministic)."""
    rng = np.random.default_rng(case.seed)
    shape = case.shape
    mean_part = rng.standard_normal(shape)
    if case.process.mean_type == "START_X":
        mean_part = rng.uniform(-1.2, 1.2, size=shape)
    if case.process.var_type == "LEARNED_RANGE":
        var_part = rng.uniform(-1.0, 1.0, size=shape)
    else:
        var_part = rng.uniform(-12.0, 0.0, size=shape)
    output = np.concatenate([mean_part, var_part], axis=1) if case.process.learned_variance else mean_part
    return CaseArrays(
        x_start=pixel_grid(rng, shape),
        noise=rng.standard_normal(shape),
        step_noise=rng.standard_normal(shape),
        model_output=np.asarray(output, dtype=np.float64),
        grad=rng.standard_normal(shape),
    )
