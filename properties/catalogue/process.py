"""Catalogue entries of `reference.process`: the forward process, the posterior, the x_0/ε predictors and
the reverse process's mean and variance."""

from __future__ import annotations

import numpy as np
import torch

import impl
from properties import strategies as sp
from properties.catalogue.builder import step_entry
from properties.catalogue.entry import Entry, Outputs
from properties.catalogue.step_inputs import (
    MV,
    PMV,
    STEP_CASES,
    impl_mean_variance,
    reference_mean_variance,
)
from properties.compare import Perturb
from properties.marshal import reference_model_timesteps, to_numpy
from reference.process import (
    p_mean_variance,
    predict_eps_from_xstart,
    predict_xstart_from_eps,
    predict_xstart_from_xprev,
    q_mean_variance,
    q_posterior_mean_variance,
    q_sample,
)
from testing.tolerances import ReferenceOp

GD = impl.GaussianDiffusion
AFFINE = ReferenceOp.AFFINE_STEP


def _pmv_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    out, model, _, _ = impl_mean_variance(case, dtype, device)
    result = {key: to_numpy(out[key]) for key in PMV}
    result["model_t"] = to_numpy(model.timesteps[0])
    return result


def _pmv_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    out, _, _ = reference_mean_variance(case, dtype_name, perturb)
    result = {key: np.asarray(out[key]) for key in PMV}
    result["model_t"] = reference_model_timesteps(case.process, np.asarray(case.t))
    return result


ENTRIES: tuple[Entry, ...] = (
    step_entry(
        name="q_mean_variance",
        impl=GD.q_mean_variance,
        reference=q_mean_variance,
        impl_args=("x_start", "t"),
        reference_args=("x_start", "t"),
        outputs=MV,
        op=AFFINE,
    ),
    step_entry(
        name="q_sample",
        impl=GD.q_sample,
        reference=q_sample,
        impl_args=("x_start", "t", "noise"),
        reference_args=("x_start", "t", "noise"),
        outputs=("x_t",),
        op=AFFINE,
    ),
    step_entry(
        name="q_posterior_mean_variance",
        impl=GD.q_posterior_mean_variance,
        reference=q_posterior_mean_variance,
        impl_args=("x_start", "x_t", "t"),
        reference_args=("x_start", "x_t", "t"),
        outputs=MV,
        op=AFFINE,
    ),
    step_entry(
        name="_predict_xstart_from_eps",
        impl=GD._predict_xstart_from_eps,
        reference=predict_xstart_from_eps,
        impl_args=("x_t", "t", "noise"),
        reference_args=("x_t", "t", "noise"),
        outputs=("out",),
        op=AFFINE,
    ),
    step_entry(
        name="_predict_eps_from_xstart",
        impl=GD._predict_eps_from_xstart,
        reference=predict_eps_from_xstart,
        impl_args=("x_t", "t", "x_start"),
        reference_args=("x_t", "t", "x_start"),
        outputs=("out",),
        op=AFFINE,
    ),
    step_entry(
        name="_predict_xstart_from_xprev",
        impl=GD._predict_xstart_from_xprev,
        reference=predict_xstart_from_xprev,
        impl_args=("x_t", "t", "model_mean"),
        reference_args=("x_t", "t", "model_mean"),
        outputs=("out",),
        op=AFFINE,
    ),
    Entry(
        name="p_mean_variance",
        impl=GD.p_mean_variance,
        reference=p_mean_variance,
        strategy=STEP_CASES,
        call_impl=_pmv_impl,
        call_reference=_pmv_ref,
        op=ReferenceOp.REVERSE_STEP,
        covers=(
            GD.p_mean_variance,
            GD._scale_timesteps,
            GD._model_timesteps,
            impl.SpacedDiffusion._scale_timesteps,
            impl.SpacedDiffusion._model_timesteps,
        ),
    ),
)
