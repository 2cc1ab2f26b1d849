"""Catalogue entries of `reference.schedule`: the β schedules and the derived tables (float64 NumPy)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from hypothesis import strategies as st

import impl
from impl.diffusion import schedule as impl_schedule
from properties import strategies as sp
from properties.catalogue.entry import FLOAT64_ONLY, Entry, Outputs
from properties.compare import Perturb
from properties.marshal import impl_diffusion, reference_tables, to_numpy
from reference.schedule import DiffusionTables, betas_for_alpha_bar, diffusion_tables, get_named_beta_schedule
from testing.tolerances import ReferenceOp

GD = impl.GaussianDiffusion

SCHEDULE_CASES = st.tuples(
    st.sampled_from(("linear", "cosine")), st.one_of(st.sampled_from(sp.STEP_COUNTS), st.integers(1, 60))
)


def _schedule_impl(case: tuple[str, int], dtype: torch.dtype, device: torch.device) -> Outputs:
    return {"betas": impl.get_named_beta_schedule(*case)}


def _schedule_ref(case: tuple[str, int], dtype_name: str, perturb: Perturb) -> Outputs:
    return {"betas": get_named_beta_schedule(*case)}


def _alpha_bar_quadratic(tau: float) -> float:
    return 1.0 - 0.98 * tau * tau


def _alpha_bar_exponential(tau: float) -> float:
    return float(np.exp(-6.0 * tau))


ALPHA_BARS: dict[str, Callable[[float], float]] = {
    "cosine": impl_schedule.cosine_alpha_bar,
    "quadratic": _alpha_bar_quadratic,
    "exponential": _alpha_bar_exponential,
}
ALPHA_BAR_CASES = st.tuples(
    st.one_of(st.sampled_from(sp.STEP_COUNTS), st.integers(1, 50)),
    st.sampled_from(tuple(ALPHA_BARS)),
    st.sampled_from((0.999, 0.5, 1.0)),
)


def _alpha_bar_impl(case: tuple[int, str, float], dtype: torch.dtype, device: torch.device) -> Outputs:
    return {"betas": impl.betas_for_alpha_bar(case[0], ALPHA_BARS[case[1]], case[2])}


def _alpha_bar_ref(case: tuple[int, str, float], dtype_name: str, perturb: Perturb) -> Outputs:
    return {"betas": betas_for_alpha_bar(case[0], ALPHA_BARS[case[1]], case[2])}


# Every table of the oracle, by its own field list (the impl's tables must carry each of them).
TABLE_FIELDS = tuple(field.name for field in dataclasses.fields(DiffusionTables))


def _tables_impl(spec: sp.ProcessSpec, dtype: torch.dtype, device: torch.device) -> Outputs:
    tab = impl_diffusion(spec).tables_for(torch.zeros(1, dtype=dtype, device=device))
    return {name: to_numpy(getattr(tab, name)) for name in TABLE_FIELDS}


def _tables_ref(spec: sp.ProcessSpec, dtype_name: str, perturb: Perturb) -> Outputs:
    tab = reference_tables(spec)
    return {name: np.asarray(getattr(tab, name)) for name in TABLE_FIELDS}


ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="get_named_beta_schedule",
        impl=impl.get_named_beta_schedule,
        reference=get_named_beta_schedule,
        strategy=SCHEDULE_CASES,
        call_impl=_schedule_impl,
        call_reference=_schedule_ref,
        op=ReferenceOp.SCHEDULE,
        covers=(impl.get_named_beta_schedule,),
        dtypes=FLOAT64_ONLY,
        raises_alike=True,
    ),
    Entry(
        name="betas_for_alpha_bar",
        impl=impl.betas_for_alpha_bar,
        reference=betas_for_alpha_bar,
        strategy=ALPHA_BAR_CASES,
        call_impl=_alpha_bar_impl,
        call_reference=_alpha_bar_ref,
        op=ReferenceOp.SCHEDULE,
        covers=(impl.betas_for_alpha_bar,),
        dtypes=FLOAT64_ONLY,
        raises_alike=True,
    ),
    Entry(
        name="tables",
        impl=GD.tables_for,
        reference=diffusion_tables,
        strategy=sp.processes(),
        call_impl=_tables_impl,
        call_reference=_tables_ref,
        op=ReferenceOp.TABLES,
        covers=(GD, GD.tables_for, impl_schedule.diffusion_tables),
    ),
)
