"""Catalogue entries of `reference.objectives`: the training losses, the VLB terms, the prior term and the
full bound, with the rounding magnitudes of their cancelling KL and likelihood terms."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import impl
from impl.diffusion import objectives as impl_objectives
from properties import magnitudes as mag
from properties import strategies as sp
from properties.catalogue.builder import step_entry
from properties.catalogue.entry import Entry, FloatArray, Outputs
from properties.catalogue.step_inputs import impl_inputs, reference_inputs
from properties.compare import Perturb, identity
from properties.marshal import (
    impl_diffusion,
    reference_tables,
    rounded,
    to_numpy,
    to_torch,
    toy_model_numpy,
    toy_model_torch,
)
from reference.objectives import full_bound_bpd, prior_bpd, training_losses, vb_term_bpd
from reference.process import q_sample
from testing.tolerances import ReferenceOp

GD = impl.GaussianDiffusion
BOUND = ReferenceOp.BOUND

# ---------------------------------------------------------------- the full bound over every step
BOUND_CASES = sp.step_cases(max_steps=10)
BOUND_KEYS = ("total_bpd", "prior_bpd", "vb", "xstart_mse", "mse")


def _bound_noises(case: sp.StepCase) -> FloatArray:
    rng = np.random.default_rng(case.seed ^ 0x5EED)
    return rng.standard_normal((case.process.num_timesteps, *case.shape))


def _bound_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    x = impl_inputs(case, dtype, device)
    spec = case.process
    noises = to_torch(_bound_noises(case), dtype, device)

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return toy_model_torch(x_t, spec.learned_variance, spec.var_type)

    out = impl_diffusion(spec).calc_bpd_loop(model, x["x_start"], case.clip_denoised, noise=noises)
    # impl keeps the original column order (timestep T-1 first); the reference indexes columns by t.
    return {key: to_numpy(out[key].flip(1) if out[key].ndim == 2 else out[key]) for key in BOUND_KEYS}


def _bound_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    x = reference_inputs(case, dtype_name, perturb)
    spec = case.process
    noises = perturb(rounded(_bound_noises(case), dtype_name), "noises")

    def model_fn(x_t: FloatArray, t: Any) -> FloatArray:
        return toy_model_numpy(x_t, spec.learned_variance, spec.var_type)

    out = full_bound_bpd(
        reference_tables(spec, perturb),
        model_fn,
        x["x_start"],
        noises,
        model_mean_type=spec.mean_type,
        model_var_type=spec.var_type,
        clip_denoised=case.clip_denoised,
    )
    return {key: np.asarray(out[key]) for key in BOUND_KEYS}


# ---------------------------------------------------------------- rounding magnitudes
def _vb_magnitude(case: sp.StepCase, dtype_name: str) -> Outputs:
    x = reference_inputs(case, dtype_name, identity)
    spec = case.process
    terms = mag.vb_terms(
        reference_tables(spec),
        x["model_output"],
        x["x_start"],
        x["x_t"],
        np.asarray(case.t),
        spec.mean_type,
        spec.var_type,
        case.clip_denoised,
    )
    return {"output": terms}


def _losses_magnitude(case: sp.StepCase, dtype_name: str) -> Outputs:
    spec = case.process
    x = reference_inputs(case, dtype_name, identity)
    t = np.asarray(case.t)
    tab = reference_tables(spec)
    x_t = q_sample(tab, x["x_start"], t, x["noise"])
    terms = mag.vb_terms(tab, x["model_output"], x["x_start"], x_t, t, spec.mean_type, spec.var_type, False)
    factor = {"RESCALED_KL": spec.num_timesteps, "RESCALED_MSE": spec.num_timesteps / 1000.0}
    scale = factor.get(spec.loss_type, 1.0)
    if spec.vlb_weight is not None:  # λ·T replaces the loss type's factor [S44]
        scale = spec.vlb_weight * spec.num_timesteps
    return {"vb": terms * scale, "loss": terms * scale}


def _prior_magnitude(case: sp.StepCase, dtype_name: str) -> Outputs:
    x = reference_inputs(case, dtype_name, identity)
    return {"prior_bpd": mag.prior_terms(reference_tables(case.process), x["x_start"])}


def _bound_magnitude(case: sp.StepCase, dtype_name: str) -> Outputs:
    spec = case.process
    x = reference_inputs(case, dtype_name, identity)
    tab = reference_tables(spec)
    noises = rounded(_bound_noises(case), dtype_name)
    columns = []
    for step in range(spec.num_timesteps):
        t = np.full(case.shape[0], step, dtype=np.int64)
        x_t = np.asarray(q_sample(tab, x["x_start"], t, noises[step]))
        output = toy_model_numpy(x_t, spec.learned_variance, spec.var_type)
        columns.append(
            mag.vb_terms(tab, output, x["x_start"], x_t, t, spec.mean_type, spec.var_type, case.clip_denoised)
        )
    vb = np.stack(columns, axis=1)
    prior = mag.prior_terms(tab, x["x_start"])
    return {"vb": vb, "prior_bpd": prior, "total_bpd": vb.sum(axis=1) + prior}


MODEL_TYPES = ("model_mean_type", "model_var_type")

ENTRIES: tuple[Entry, ...] = (
    step_entry(
        name="training_losses",
        impl=GD.training_losses,
        reference=training_losses,
        impl_args=("model", "x_start", "t"),
        impl_keywords=("noise",),
        reference_args=("model_output", "x_start", "t", "noise"),
        reference_keywords=(*MODEL_TYPES, "loss_type", "loss_weighting", "min_snr_gamma", "vlb_weight"),
        outputs=None,
        op=BOUND,
        covers=(GD.training_losses, impl_objectives.training_losses),
        magnitude=_losses_magnitude,
    ),
    step_entry(
        name="vb_terms_bpd",
        impl=GD.vb_terms_bpd,
        reference=vb_term_bpd,
        impl_args=("model", "x_start", "x_t", "t", "clip_denoised"),
        reference_args=("model_output", "x_start", "x_t", "t"),
        reference_keywords=(*MODEL_TYPES, "clip_denoised"),
        outputs=("output", "pred_xstart"),
        op=BOUND,
        covers=(GD.vb_terms_bpd, impl_objectives.vb_term_bpd),
        magnitude=_vb_magnitude,
    ),
    step_entry(
        name="prior_bpd",
        impl=GD.prior_bpd,
        reference=prior_bpd,
        impl_args=("x_start",),
        reference_args=("x_start",),
        outputs=("prior_bpd",),
        op=BOUND,
        magnitude=_prior_magnitude,
    ),
    Entry(
        name="calc_bpd_loop",
        impl=GD.calc_bpd_loop,
        reference=full_bound_bpd,
        strategy=BOUND_CASES,
        call_impl=_bound_impl,
        call_reference=_bound_ref,
        op=BOUND,
        covers=(GD.calc_bpd_loop, impl.calc_bpd_loop),
        magnitude=_bound_magnitude,
    ),
)
