"""Catalogue entries of `reference.respacing`: which steps are kept, and the respaced process's β."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

import impl
from impl.diffusion import respacing as impl_respacing
from properties import strategies as sp
from properties.catalogue.entry import FLOAT64_ONLY, Entry, Outputs
from properties.compare import Perturb
from properties.marshal import impl_diffusion
from reference.respacing import respaced_betas, space_timesteps
from reference.schedule import diffusion_tables, get_named_beta_schedule
from testing.tolerances import ReferenceOp


@st.composite
def _spacing_cases(draw: st.DrawFn) -> tuple[int, str]:
    steps = draw(st.one_of(st.sampled_from(sp.STEP_COUNTS), st.integers(1, 300)))
    if draw(st.booleans()):
        return steps, f"ddim{draw(st.integers(1, min(steps, 300) + 2))}"
    counts = draw(st.lists(st.integers(0, max(steps // 2, 2)), min_size=1, max_size=4))
    return steps, ",".join(str(c) for c in counts)


def _space_impl(case: tuple[int, str], dtype: torch.dtype, device: torch.device) -> Outputs:
    return {"kept": np.asarray(sorted(impl.space_timesteps(*case)), dtype=np.float64)}


def _space_ref(case: tuple[int, str], dtype_name: str, perturb: Perturb) -> Outputs:
    return {"kept": np.asarray(sorted(space_timesteps(*case)), dtype=np.float64)}


RESPACED_PROCESSES = sp.processes().filter(lambda p: p.kept is not None)


def _respaced_impl(spec: sp.ProcessSpec, dtype: torch.dtype, device: torch.device) -> Outputs:
    diffusion = impl_diffusion(spec)
    assert isinstance(diffusion, impl.SpacedDiffusion)
    return {
        "betas": np.asarray(diffusion.betas),
        "timestep_map": np.asarray(diffusion.timestep_map, dtype=np.float64),
    }


def _respaced_ref(spec: sp.ProcessSpec, dtype_name: str, perturb: Perturb) -> Outputs:
    base = diffusion_tables(get_named_beta_schedule(spec.schedule, spec.base_steps))
    assert spec.kept is not None
    betas, timestep_map = respaced_betas(base.alphas_cumprod, set(spec.kept))
    return {"betas": np.asarray(betas), "timestep_map": np.asarray(timestep_map, dtype=np.float64)}


ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="space_timesteps",
        impl=impl.space_timesteps,
        reference=space_timesteps,
        strategy=_spacing_cases(),
        call_impl=_space_impl,
        call_reference=_space_ref,
        op=ReferenceOp.EXACT,
        covers=(impl.space_timesteps,),
        dtypes=FLOAT64_ONLY,
        raises_alike=True,
    ),
    Entry(
        name="SpacedDiffusion",
        impl=impl.SpacedDiffusion,
        reference=respaced_betas,
        strategy=RESPACED_PROCESSES,
        call_impl=_respaced_impl,
        call_reference=_respaced_ref,
        op=ReferenceOp.RESPACED_BETAS,
        covers=(impl.SpacedDiffusion, impl_respacing.respaced_betas),
        dtypes=FLOAT64_ONLY,
    ),
)
