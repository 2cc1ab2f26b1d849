"""Catalogue entries of `reference.editing`: img2img's start level and start, inpainting's replacement, the
one-step forward kernel and RePaint's jump schedule ([S53]–[S57])."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st

import impl.diffusion.editing as impl_editing
import impl.sampling.editing as impl_loops
from properties import strategies as sp
from properties.catalogue.builder import impl_values, reference_values
from properties.catalogue.entry import FLOAT64_ONLY, Entry, Outputs
from properties.catalogue.step_inputs import STEP_CASES
from properties.compare import Perturb
from properties.marshal import impl_diffusion, reference_tables, to_numpy
from reference.editing import forward_step, jump_schedule, noised_to_level, replace_known, start_level
from testing.tolerances import ReferenceOp

CPU_ONLY = ("cpu",)  # integer schedules: no tensors, nothing device-dependent


def _levels(case: sp.StepCase) -> np.ndarray:
    """Level ℓ_b = t_b + (b mod 2) of batch row b: covers ℓ = 0 (t = 0) and ℓ = T (t = T − 1)."""
    t = np.asarray(case.t, dtype=np.int64)
    return t + np.arange(t.shape[0], dtype=np.int64) % 2


# ---------------------------------------------------------------- [S54] the forward process at a level
def _noised_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    v = impl_values(case, dtype, device)
    x0 = v["x_start"]
    tab = impl_diffusion(case.process).tables_for(x0)
    level = torch.as_tensor(_levels(case), device=device)
    return {"x": to_numpy(impl_editing.noised_to_level(tab, x0, level, v["noise"]))}


def _noised_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    v = reference_values(case, dtype_name, perturb)
    tab = reference_tables(case.process, perturb)
    return {"x": np.asarray(noised_to_level(tab, v["x_start"], _levels(case), v["noise"]))}


# ---------------------------------------------------------------- [S55] the replacement
def _keep(grad: np.ndarray) -> np.ndarray:
    """A keep mask of shape (B, 1, …) (broadcast over channels): where the case's first grad channel > 0."""
    return np.asarray(grad[:, :1] > 0.0)


def _replace_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    v = impl_values(case, dtype, device)
    keep = torch.as_tensor(_keep(sp.case_arrays(case).grad), device=device)
    mask = impl_editing.check_mask(keep, v["x_t"].shape)
    return {"x": to_numpy(impl_editing.replace_known(v["x_t"], v["x_start"], mask))}


def _replace_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    v = reference_values(case, dtype_name, perturb)
    mask = _keep(sp.case_arrays(case).grad).astype(np.float64)
    return {"x": np.asarray(replace_known(v["x_t"], v["x_start"], mask))}


# ---------------------------------------------------------------- [S56] the one-step forward kernel
def _forward_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    v = impl_values(case, dtype, device)
    tab = impl_diffusion(case.process).tables_for(v["x_t"])
    return {"x": to_numpy(impl_editing.forward_step(tab, v["x_t"], v["t"], v["step_noise"]))}


def _forward_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    v = reference_values(case, dtype_name, perturb)
    tab = reference_tables(case.process, perturb)
    return {"x": np.asarray(forward_step(tab, v["x_t"], v["t"], v["step_noise"]))}


# ---------------------------------------------------------------- [S53], [S57] integer schedules
@dataclass(frozen=True)
class StartCase:
    strength: float
    num_timesteps: int


@st.composite
def _start_cases(draw: st.DrawFn) -> StartCase:
    """T in [1, 4000]; s at 0, 1, a decimal of 1–3 digits (s·T often a decimal tie, which rounds up, e.g.
    0.29 of 50 = 14.5 where binary floating point gives 14.499999999999998), the float nearest the tie
    k/T + 1/(2T), or anywhere in [0, 1]."""
    # T anywhere, or one that makes a decimal s of few digits a tie more often
    steps = draw(st.one_of(st.integers(1, 4000), st.sampled_from((2, 10, 50, 250, 1000))))
    k = draw(st.integers(0, steps - 1))
    digits = draw(st.integers(1, 3))
    strength = draw(
        st.one_of(
            st.sampled_from((0.0, 1.0, 0.5, 0.29, 0.57)),
            st.integers(0, 10**digits).map(lambda n: n / 10**digits),
            st.just((k + 0.5) / steps),
            st.floats(0.0, 1.0, allow_nan=False),
        )
    )
    return StartCase(strength, steps)


def _start_impl(case: StartCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    return {"level": np.asarray([impl_editing.start_level(case.strength, case.num_timesteps)], np.float64)}


def _start_ref(case: StartCase, dtype_name: str, perturb: Perturb) -> Outputs:
    return {"level": np.asarray([start_level(case.strength, case.num_timesteps)], np.float64)}


@dataclass(frozen=True)
class JumpCase:
    num_levels: int
    jump_length: int
    resample_jumps: int


JUMP_CASES = st.builds(JumpCase, st.integers(1, 260), st.integers(1, 25), st.integers(1, 6))


def _jump_impl(case: JumpCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    levels = impl_editing.jump_schedule(case.num_levels, case.jump_length, case.resample_jumps)
    return {"levels": np.asarray(levels, np.float64)}


def _jump_ref(case: JumpCase, dtype_name: str, perturb: Perturb) -> Outputs:
    levels = jump_schedule(case.num_levels, case.jump_length, case.resample_jumps)
    return {"levels": np.asarray(levels, np.float64)}


ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="start_level",
        impl=impl_editing.start_level,
        reference=start_level,
        strategy=_start_cases(),
        call_impl=_start_impl,
        call_reference=_start_ref,
        op=ReferenceOp.EXACT,
        covers=(impl_editing.start_level, impl_editing.check_strength, impl_loops.edit_schedule),
        dtypes=FLOAT64_ONLY,
        devices=CPU_ONLY,
    ),
    Entry(
        name="noised_to_level",
        impl=impl_editing.noised_to_level,
        reference=noised_to_level,
        strategy=STEP_CASES,
        call_impl=_noised_impl,
        call_reference=_noised_ref,
        op=ReferenceOp.AFFINE_STEP,
    ),
    Entry(
        name="replace_known",
        impl=impl_editing.replace_known,
        reference=replace_known,
        strategy=STEP_CASES,
        call_impl=_replace_impl,
        call_reference=_replace_ref,
        op=ReferenceOp.EXACT,
        covers=(impl_editing.replace_known, impl_editing.check_mask),
    ),
    Entry(
        name="forward_step",
        impl=impl_editing.forward_step,
        reference=forward_step,
        strategy=STEP_CASES,
        call_impl=_forward_impl,
        call_reference=_forward_ref,
        op=ReferenceOp.AFFINE_STEP,
    ),
    Entry(
        name="jump_schedule",
        impl=impl_editing.jump_schedule,
        reference=jump_schedule,
        strategy=JUMP_CASES,
        call_impl=_jump_impl,
        call_reference=_jump_ref,
        op=ReferenceOp.EXACT,
        covers=(impl_editing.jump_schedule, impl_loops.edit_schedule),
        dtypes=FLOAT64_ONLY,
        devices=CPU_ONLY,
    ),
)
