"""Catalogue entries of `reference.steps`: guidance and one reverse step (ancestral, DDIM, DDIM inversion),
with the rounding magnitudes the perturbation of their inputs cannot reveal."""

from __future__ import annotations

import numpy as np
import torch

import impl
from properties import magnitudes as mag
from properties import strategies as sp
from properties.catalogue.entry import Entry, FloatArray, Outputs
from properties.catalogue.step_inputs import (
    PMV,
    STEP_CASES,
    impl_inputs,
    impl_mean_variance,
    reference_mean_variance,
)
from properties.compare import Perturb, identity
from properties.marshal import (
    RecordingCondFn,
    RecordingModel,
    denoised_fn_torch,
    impl_diffusion,
    reference_model_timesteps,
    reference_tables,
    t_arrays,
    to_numpy,
)
from reference.steps import condition_mean, condition_score, ddim_reverse_step, ddim_step, p_sample_step
from testing.tolerances import ReferenceOp

GD = impl.GaussianDiffusion
REVERSE = ReferenceOp.REVERSE_STEP


# ---------------------------------------------------------------- guidance
def _condition_mean_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    out, _, x, t = impl_mean_variance(case, dtype, device)
    cond = RecordingCondFn(x["grad"])
    mean = impl_diffusion(case.process).condition_mean(cond, out, x["x_t"], t)
    return {"mean": to_numpy(mean), "cond_t": to_numpy(cond.timesteps[0])}


def _condition_mean_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    out, _, x = reference_mean_variance(case, dtype_name, perturb)
    mean = condition_mean(out, x["grad"])
    return {"mean": np.asarray(mean), "cond_t": reference_model_timesteps(case.process, np.asarray(case.t))}


def _condition_score_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    out, _, x, t = impl_mean_variance(case, dtype, device)
    cond = RecordingCondFn(x["grad"])
    new = impl_diffusion(case.process).condition_score(cond, out, x["x_t"], t)
    return {key: to_numpy(new[key]) for key in PMV}


def _condition_score_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    out, tab, x = reference_mean_variance(case, dtype_name, perturb)
    new = condition_score(tab, out, x["x_t"], np.asarray(case.t), x["grad"])
    return {key: np.asarray(new[key]) for key in PMV}


# ---------------------------------------------------------------- one reverse step
class _StepImpl:
    """The impl's p_sample / ddim_sample / ddim_reverse_sample on one case, with the recording stand-ins."""

    def __init__(self, case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> None:
        self.x = impl_inputs(case, dtype, device)
        self.t, _ = t_arrays(case, device)
        self.diffusion = impl_diffusion(case.process)
        self.model = RecordingModel(self.x["model_output"])
        self.denoise = denoised_fn_torch if case.use_denoised_fn else None
        self.cond = RecordingCondFn(self.x["grad"]) if case.use_cond_fn else None


def _sample_outputs(result: dict[str, torch.Tensor]) -> Outputs:
    return {"sample": to_numpy(result["sample"]), "pred_xstart": to_numpy(result["pred_xstart"])}


def _p_sample_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    s = _StepImpl(case, dtype, device)
    return _sample_outputs(
        s.diffusion.p_sample(
            s.model, s.x["x_t"], s.t, case.clip_denoised, s.denoise, s.cond, noise=s.x["step_noise"]
        )
    )


def _p_sample_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    out, _, x = reference_mean_variance(case, dtype_name, perturb)
    if case.use_cond_fn:
        out["mean"] = condition_mean(out, x["grad"])
    sample = p_sample_step(out, np.asarray(case.t), x["step_noise"])
    return {"sample": np.asarray(sample), "pred_xstart": np.asarray(out["pred_xstart"])}


def _ddim_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    s = _StepImpl(case, dtype, device)
    return _sample_outputs(
        s.diffusion.ddim_sample(
            s.model,
            s.x["x_t"],
            s.t,
            case.clip_denoised,
            s.denoise,
            s.cond,
            eta=case.eta,
            noise=s.x["step_noise"],
        )
    )


def _ddim_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    out, tab, x = reference_mean_variance(case, dtype_name, perturb)
    t = np.asarray(case.t)
    if case.use_cond_fn:
        out = dict(condition_score(tab, out, x["x_t"], t, x["grad"]))
    sample = ddim_step(tab, out, x["x_t"], t, x["step_noise"], case.eta)
    return {"sample": np.asarray(sample), "pred_xstart": np.asarray(out["pred_xstart"])}


def _ddim_reverse_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    s = _StepImpl(case, dtype, device)
    return _sample_outputs(
        s.diffusion.ddim_reverse_sample(s.model, s.x["x_t"], s.t, case.clip_denoised, s.denoise)
    )


def _ddim_reverse_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    out, tab, x = reference_mean_variance(case, dtype_name, perturb)
    sample = ddim_reverse_step(tab, out, x["x_t"], np.asarray(case.t))
    return {"sample": np.asarray(sample), "pred_xstart": np.asarray(out["pred_xstart"])}


# ---------------------------------------------------------------- rounding magnitudes
def _guided_xstart_magnitude(case: sp.StepCase, dtype_name: str) -> FloatArray:
    """Rounding magnitude of the score-guided x̂_0 (properties.magnitudes.guided_xstart_terms)."""
    out, tab, x = reference_mean_variance(case, dtype_name, identity)
    return mag.guided_xstart_terms(tab, out, x["x_t"], np.asarray(case.t), x["grad"])


def _condition_score_magnitude(case: sp.StepCase, dtype_name: str) -> Outputs:
    """x̂_0' carries the guided magnitude; the mean c1·x̂_0' + c2·x_t [S7] carries it times c1."""
    terms = _guided_xstart_magnitude(case, dtype_name)  # condition_score always guides
    coef1 = np.asarray(reference_tables(case.process).posterior_mean_coef1)[np.asarray(case.t)]
    return {"pred_xstart": terms, "mean": coef1.reshape((-1,) + (1,) * (terms.ndim - 1)) * terms}


def _ddim_magnitude(case: sp.StepCase, dtype_name: str) -> Outputs:
    """Rounding the inputs cannot reveal in the DDIM step [S30] (see properties.magnitudes): ε̂ recomputed
    from x̂_0 times its coefficient √c, c = 1 − ᾱ_prev − σ²; the cancelling coefficient √c itself; and, with
    guidance, the guided x̂_0' magnitude m, carried as √ᾱ_prev·m plus the ε̂ recomputed from it."""
    out, tab, x = reference_mean_variance(case, dtype_name, identity)
    t = np.asarray(case.t)
    if case.use_cond_fn:
        out = dict(condition_score(tab, out, x["x_t"], t, x["grad"]))
    shape = (-1,) + (1,) * (x["x_t"].ndim - 1)
    abar = np.asarray(tab.alphas_cumprod)[t].reshape(shape)
    abar_prev = np.asarray(tab.alphas_cumprod_prev)[t].reshape(shape)
    sigma_sq = case.eta**2 * (1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev)
    coef = np.sqrt(np.maximum(1.0 - abar_prev - sigma_sq, 0.0))
    sample = mag.ddim_noise_coef_terms(tab, out, x["x_t"], t, case.eta)
    sample = sample + coef * mag.eps_from_xstart_terms(tab, out, x["x_t"], t)
    if not case.use_cond_fn:
        return {"sample": sample}
    terms = _guided_xstart_magnitude(case, dtype_name)
    recipm1 = np.asarray(tab.sqrt_recipm1_alphas_cumprod)[t].reshape(shape)
    return {"pred_xstart": terms, "sample": sample + np.sqrt(abar_prev) * terms + terms / recipm1}


def _ddim_reverse_magnitude(case: sp.StepCase, dtype_name: str) -> Outputs:
    """x_{t+1} = √ᾱ_next x̂_0 + √(1 − ᾱ_next) ε̂ [S31]: ε̂ recomputed from x̂_0 carries its rounding."""
    out, tab, x = reference_mean_variance(case, dtype_name, identity)
    t = np.asarray(case.t)
    shape = (-1,) + (1,) * (x["x_t"].ndim - 1)
    abar_next = np.asarray(tab.alphas_cumprod_next)[t].reshape(shape)
    return {"sample": np.sqrt(1.0 - abar_next) * mag.eps_from_xstart_terms(tab, out, x["x_t"], t)}


ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="condition_mean",
        impl=GD.condition_mean,
        reference=condition_mean,
        strategy=STEP_CASES,
        call_impl=_condition_mean_impl,
        call_reference=_condition_mean_ref,
        op=REVERSE,
        covers=(GD.condition_mean,),
    ),
    Entry(
        name="condition_score",
        impl=GD.condition_score,
        reference=condition_score,
        strategy=STEP_CASES,
        call_impl=_condition_score_impl,
        call_reference=_condition_score_ref,
        op=REVERSE,
        covers=(GD.condition_score,),
        magnitude=_condition_score_magnitude,
    ),
    Entry(
        name="p_sample",
        impl=GD.p_sample,
        reference=p_sample_step,
        strategy=STEP_CASES,
        call_impl=_p_sample_impl,
        call_reference=_p_sample_ref,
        op=REVERSE,
        covers=(GD.p_sample,),
    ),
    Entry(
        name="ddim_sample",
        impl=GD.ddim_sample,
        reference=ddim_step,
        strategy=STEP_CASES,
        call_impl=_ddim_impl,
        call_reference=_ddim_ref,
        op=REVERSE,
        covers=(GD.ddim_sample,),
        magnitude=_ddim_magnitude,
    ),
    Entry(
        name="ddim_reverse_sample",
        impl=GD.ddim_reverse_sample,
        reference=ddim_reverse_step,
        strategy=STEP_CASES,
        call_impl=_ddim_reverse_impl,
        call_reference=_ddim_reverse_ref,
        op=REVERSE,
        covers=(GD.ddim_reverse_sample,),
        magnitude=_ddim_reverse_magnitude,
    ),
)
