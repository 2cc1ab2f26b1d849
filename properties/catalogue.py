"""The catalogue: one entry per paired function, impl (PyTorch) against reference (float64 NumPy).

Each entry names the impl callable and the reference callable, a Hypothesis strategy of inputs, a
marshal (two functions turning a drawn case into each side's arguments and each side's result into a
dict of float64 arrays) and the tolerance operation key, looked up per dtype tier in
`properties.tolerances`.  `call_reference` takes a `perturb` applied to every input and table entry, from
which the comparison estimates how strongly rounding is amplified (see `properties.compare`).

To add an entry: write the two marshal functions, append an `Entry` to `CATALOGUE` below, list in
`covers` the public impl callables it exercises, and add tolerance keys if the op is new.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from numpy.typing import NDArray

import impl
from impl.diffusion import objectives as impl_objectives
from impl.diffusion import respacing as impl_respacing
from impl.diffusion import schedule as impl_schedule
from impl.diffusion import timesteps as impl_timesteps
from properties import magnitudes as mag
from properties import strategies as sp
from properties.compare import Perturb, identity
from properties.marshal import (
    RecordingCondFn,
    RecordingModel,
    denoised_fn_numpy,
    denoised_fn_torch,
    impl_diffusion,
    ref,
    reference_model_timesteps,
    reference_tables,
    rounded,
    t_arrays,
    to_numpy,
    to_torch,
    toy_model_numpy,
    toy_model_torch,
    x_t_float64,
)

FloatArray = NDArray[np.float64]
Outputs = dict[str, FloatArray]
GD = impl.GaussianDiffusion


@dataclass(frozen=True)
class Entry:
    """One impl ≡ reference pairing."""

    name: str
    impl: Callable[..., Any]
    reference: str  # "module.function" inside `reference/`
    strategy: st.SearchStrategy[Any]
    call_impl: Callable[[Any, torch.dtype, torch.device], Outputs]
    call_reference: Callable[[Any, str, Perturb], Outputs]
    op: str
    covers: tuple[Callable[..., Any], ...] = ()
    dtypes: tuple[str, ...] = ("float64", "float32")
    raises_alike: bool = False  # a ValueError on one side must be a ValueError on the other
    # Rounding magnitudes that perturbing inputs cannot reveal (see properties.magnitudes), per output.
    magnitude: Callable[[Any, str], Outputs] | None = None
    devices: tuple[str, ...] = ("cpu", "cuda")

    def reference_callable(self) -> Callable[..., Any]:
        """The reference function (imported lazily)."""
        module, name = self.reference.rsplit(".", 1)
        fn: Callable[..., Any] = getattr(ref(module), name)
        return fn


# ---------------------------------------------------------------- schedules and respacing (float64 NumPy)
SCHEDULE_CASES = st.tuples(
    st.sampled_from(("linear", "cosine")), st.one_of(st.sampled_from(sp.STEP_COUNTS), st.integers(1, 60))
)


def _schedule_impl(case: tuple[str, int], dtype: torch.dtype, device: torch.device) -> Outputs:
    return {"betas": impl.get_named_beta_schedule(*case)}


def _schedule_ref(case: tuple[str, int], dtype_name: str, perturb: Perturb) -> Outputs:
    return {"betas": ref("schedule").get_named_beta_schedule(*case)}


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
    return {"betas": ref("schedule").betas_for_alpha_bar(case[0], ALPHA_BARS[case[1]], case[2])}


TABLE_FIELDS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "alphas_cumprod_next",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)


def _tables_impl(spec: sp.ProcessSpec, dtype: torch.dtype, device: torch.device) -> Outputs:
    tab = impl_diffusion(spec).tables_for(torch.zeros(1, dtype=dtype, device=device))
    return {name: to_numpy(getattr(tab, name)) for name in TABLE_FIELDS}


def _tables_ref(spec: sp.ProcessSpec, dtype_name: str, perturb: Perturb) -> Outputs:
    tab = reference_tables(spec)
    return {name: np.asarray(getattr(tab, name)) for name in TABLE_FIELDS}


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
    return {"kept": np.asarray(sorted(ref("respacing").space_timesteps(*case)), dtype=np.float64)}


RESPACED_PROCESSES = sp.processes().filter(lambda p: p.kept is not None)


def _respaced_impl(spec: sp.ProcessSpec, dtype: torch.dtype, device: torch.device) -> Outputs:
    diffusion = impl_diffusion(spec)
    assert isinstance(diffusion, impl.SpacedDiffusion)
    return {
        "betas": np.asarray(diffusion.betas),
        "timestep_map": np.asarray(diffusion.timestep_map, dtype=np.float64),
    }


def _respaced_ref(spec: sp.ProcessSpec, dtype_name: str, perturb: Perturb) -> Outputs:
    schedule = ref("schedule")
    base = schedule.diffusion_tables(schedule.get_named_beta_schedule(spec.schedule, spec.base_steps))
    assert spec.kept is not None
    betas, timestep_map = ref("respacing").respaced_betas(base.alphas_cumprod, set(spec.kept))
    return {"betas": np.asarray(betas), "timestep_map": np.asarray(timestep_map, dtype=np.float64)}


# ---------------------------------------------------------------- forward process and posterior
STEP_CASES = sp.step_cases()


def _inputs(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> dict[str, FloatArray]:
    """The reference-side inputs: rounded as the impl sees them, then perturbed."""
    arrays = sp.case_arrays(case)
    return {
        "x_start": perturb(rounded(arrays.x_start, dtype_name), "x_start"),
        "noise": perturb(rounded(arrays.noise, dtype_name), "noise"),
        "step_noise": perturb(rounded(arrays.step_noise, dtype_name), "step_noise"),
        "model_output": perturb(rounded(arrays.model_output, dtype_name), "model_output"),
        "grad": perturb(rounded(arrays.grad, dtype_name), "grad"),
        "x_t": perturb(rounded(x_t_float64(case), dtype_name), "x_t"),
    }


def _tensors(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    arrays = sp.case_arrays(case)
    return {
        "x_start": to_torch(arrays.x_start, dtype, device),
        "noise": to_torch(arrays.noise, dtype, device),
        "step_noise": to_torch(arrays.step_noise, dtype, device),
        "model_output": to_torch(arrays.model_output, dtype, device),
        "grad": to_torch(arrays.grad, dtype, device),
        "x_t": to_torch(x_t_float64(case), dtype, device),
    }


def _named(keys: tuple[str, ...], values: Any) -> Outputs:
    return {
        key: (to_numpy(v) if isinstance(v, torch.Tensor) else np.asarray(v, dtype=np.float64))
        for key, v in zip(keys, values, strict=True)
    }


MV = ("mean", "variance", "log_variance")


def _q_mean_variance_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    x = _tensors(case, dtype, device)
    t, _ = t_arrays(case, device)
    return _named(MV, impl_diffusion(case.process).q_mean_variance(x["x_start"], t))


def _q_mean_variance_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    x = _inputs(case, dtype_name, perturb)
    tab = reference_tables(case.process, perturb)
    return _named(MV, ref("process").q_mean_variance(tab, x["x_start"], np.asarray(case.t)))


def _q_sample_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    x = _tensors(case, dtype, device)
    t, _ = t_arrays(case, device)
    return {"x_t": to_numpy(impl_diffusion(case.process).q_sample(x["x_start"], t, x["noise"]))}


def _q_sample_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    x = _inputs(case, dtype_name, perturb)
    tab = reference_tables(case.process, perturb)
    return {"x_t": np.asarray(ref("process").q_sample(tab, x["x_start"], np.asarray(case.t), x["noise"]))}


def _posterior_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    x = _tensors(case, dtype, device)
    t, _ = t_arrays(case, device)
    return _named(MV, impl_diffusion(case.process).q_posterior_mean_variance(x["x_start"], x["x_t"], t))


def _posterior_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    x = _inputs(case, dtype_name, perturb)
    tab = reference_tables(case.process, perturb)
    return _named(
        MV, ref("process").q_posterior_mean_variance(tab, x["x_start"], x["x_t"], np.asarray(case.t))
    )


def _mean_part(array: Any, case: sp.StepCase) -> Any:
    return array[:, : case.shape[1]]


def _predictor_entry(name: str, impl_fn: Callable[..., Any], ref_name: str, operand: str) -> Entry:
    """An entry for the x_0/ε predictors: f(x_t, t, operand)."""

    def run_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
        x = _tensors(case, dtype, device)
        t, _ = t_arrays(case, device)
        value = x[operand] if operand != "model_output" else _mean_part(x[operand], case)
        return {"out": to_numpy(impl_fn(impl_diffusion(case.process), x["x_t"], t, value))}

    def run_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
        x = _inputs(case, dtype_name, perturb)
        tab = reference_tables(case.process, perturb)
        value = x[operand] if operand != "model_output" else _mean_part(x[operand], case)
        return {
            "out": np.asarray(getattr(ref("process"), ref_name)(tab, x["x_t"], np.asarray(case.t), value))
        }

    return Entry(
        name, impl_fn, f"process.{ref_name}", STEP_CASES, run_impl, run_ref, "affine_step", (impl_fn,)
    )


# ---------------------------------------------------------------- reverse process
PMV = ("mean", "variance", "log_variance", "pred_xstart")


def _pmv_impl_raw(
    case: sp.StepCase, dtype: torch.dtype, device: torch.device
) -> tuple[dict[str, torch.Tensor], RecordingModel, dict[str, torch.Tensor], torch.Tensor]:
    x = _tensors(case, dtype, device)
    t, _ = t_arrays(case, device)
    model = RecordingModel(x["model_output"])
    out = impl_diffusion(case.process).p_mean_variance(
        model, x["x_t"], t, case.clip_denoised, denoised_fn_torch if case.use_denoised_fn else None
    )
    return out, model, x, t


def _pmv_ref_raw(
    case: sp.StepCase, dtype_name: str, perturb: Perturb
) -> tuple[dict[str, Any], Any, dict[str, FloatArray]]:
    x = _inputs(case, dtype_name, perturb)
    tab = reference_tables(case.process, perturb)
    out = ref("process").p_mean_variance(
        tab,
        x["model_output"],
        x["x_t"],
        np.asarray(case.t),
        model_mean_type=case.process.mean_type,
        model_var_type=case.process.var_type,
        clip_denoised=case.clip_denoised,
        denoised_fn=denoised_fn_numpy if case.use_denoised_fn else None,
    )
    return dict(out), tab, x


def _pmv_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    out, model, _, _ = _pmv_impl_raw(case, dtype, device)
    result = {key: to_numpy(out[key]) for key in PMV}
    result["model_t"] = to_numpy(model.timesteps[0])
    return result


def _pmv_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    out, _, _ = _pmv_ref_raw(case, dtype_name, perturb)
    result = {key: np.asarray(out[key]) for key in PMV}
    result["model_t"] = reference_model_timesteps(case.process, np.asarray(case.t))
    return result


def _condition_mean_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    out, _, x, t = _pmv_impl_raw(case, dtype, device)
    cond = RecordingCondFn(x["grad"])
    mean = impl_diffusion(case.process).condition_mean(cond, out, x["x_t"], t)
    return {"mean": to_numpy(mean), "cond_t": to_numpy(cond.timesteps[0])}


def _condition_mean_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    out, _, x = _pmv_ref_raw(case, dtype_name, perturb)
    mean = ref("steps").condition_mean(out, x["grad"])
    return {"mean": np.asarray(mean), "cond_t": reference_model_timesteps(case.process, np.asarray(case.t))}


def _condition_score_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    out, _, x, t = _pmv_impl_raw(case, dtype, device)
    cond = RecordingCondFn(x["grad"])
    new = impl_diffusion(case.process).condition_score(cond, out, x["x_t"], t)
    return {key: to_numpy(new[key]) for key in PMV}


def _condition_score_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    out, tab, x = _pmv_ref_raw(case, dtype_name, perturb)
    new = ref("steps").condition_score(tab, out, x["x_t"], np.asarray(case.t), x["grad"])
    return {key: np.asarray(new[key]) for key in PMV}


def _step_impl(kind: str) -> Callable[[sp.StepCase, torch.dtype, torch.device], Outputs]:
    def run(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
        x = _tensors(case, dtype, device)
        t, _ = t_arrays(case, device)
        diffusion = impl_diffusion(case.process)
        model = RecordingModel(x["model_output"])
        denoise = denoised_fn_torch if case.use_denoised_fn else None
        cond = RecordingCondFn(x["grad"]) if case.use_cond_fn else None
        if kind == "ancestral":
            res = diffusion.p_sample(
                model, x["x_t"], t, case.clip_denoised, denoise, cond, noise=x["step_noise"]
            )
        elif kind == "ddim":
            res = diffusion.ddim_sample(
                model, x["x_t"], t, case.clip_denoised, denoise, cond, eta=case.eta, noise=x["step_noise"]
            )
        else:
            res = diffusion.ddim_reverse_sample(model, x["x_t"], t, case.clip_denoised, denoise)
        return {"sample": to_numpy(res["sample"]), "pred_xstart": to_numpy(res["pred_xstart"])}

    return run


def _step_ref(kind: str) -> Callable[[sp.StepCase, str, Perturb], Outputs]:
    def run(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
        out, tab, x = _pmv_ref_raw(case, dtype_name, perturb)
        steps = ref("steps")
        t = np.asarray(case.t)
        if kind == "ancestral":
            if case.use_cond_fn:
                out["mean"] = steps.condition_mean(out, x["grad"])
            sample = steps.p_sample_step(out, t, x["step_noise"])
        elif kind == "ddim":
            if case.use_cond_fn:
                out = dict(steps.condition_score(tab, out, x["x_t"], t, x["grad"]))
            sample = steps.ddim_step(tab, out, x["x_t"], t, x["step_noise"], case.eta)
        else:
            sample = steps.ddim_reverse_step(tab, out, x["x_t"], t)
        return {"sample": np.asarray(sample), "pred_xstart": np.asarray(out["pred_xstart"])}

    return run


# ---------------------------------------------------------------- objectives and the bound
def _losses_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    x = _tensors(case, dtype, device)
    t, _ = t_arrays(case, device)
    model = RecordingModel(x["model_output"])
    terms = impl_diffusion(case.process).training_losses(model, x["x_start"], t, noise=x["noise"])
    return {key: to_numpy(value) for key, value in terms.items()}


def _losses_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    x = _inputs(case, dtype_name, perturb)
    tab = reference_tables(case.process, perturb)
    terms = ref("objectives").training_losses(
        tab,
        x["model_output"],
        x["x_start"],
        np.asarray(case.t),
        x["noise"],
        model_mean_type=case.process.mean_type,
        model_var_type=case.process.var_type,
        loss_type=case.process.loss_type,
    )
    return {key: np.asarray(value) for key, value in terms.items()}


def _vb_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    x = _tensors(case, dtype, device)
    t, _ = t_arrays(case, device)
    model = RecordingModel(x["model_output"])
    out = impl_diffusion(case.process).vb_terms_bpd(model, x["x_start"], x["x_t"], t, case.clip_denoised)
    return {"output": to_numpy(out["output"]), "pred_xstart": to_numpy(out["pred_xstart"])}


def _vb_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    x = _inputs(case, dtype_name, perturb)
    tab = reference_tables(case.process, perturb)
    out = ref("objectives").vb_term_bpd(
        tab,
        x["model_output"],
        x["x_start"],
        x["x_t"],
        np.asarray(case.t),
        model_mean_type=case.process.mean_type,
        model_var_type=case.process.var_type,
        clip_denoised=case.clip_denoised,
    )
    return {"output": np.asarray(out["output"]), "pred_xstart": np.asarray(out["pred_xstart"])}


def _prior_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    x = _tensors(case, dtype, device)
    return {"prior_bpd": to_numpy(impl_diffusion(case.process).prior_bpd(x["x_start"]))}


def _prior_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    x = _inputs(case, dtype_name, perturb)
    return {
        "prior_bpd": np.asarray(
            ref("objectives").prior_bpd(reference_tables(case.process, perturb), x["x_start"])
        )
    }


BOUND_CASES = sp.step_cases(max_steps=10)
BOUND_KEYS = ("total_bpd", "prior_bpd", "vb", "xstart_mse", "mse")


def _bound_noises(case: sp.StepCase) -> FloatArray:
    rng = np.random.default_rng(case.seed ^ 0x5EED)
    return rng.standard_normal((case.process.num_timesteps, *case.shape))


def _bound_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    x = _tensors(case, dtype, device)
    spec = case.process
    noises = to_torch(_bound_noises(case), dtype, device)

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return toy_model_torch(x_t, spec.learned_variance, spec.var_type)

    out = impl_diffusion(spec).calc_bpd_loop(model, x["x_start"], case.clip_denoised, noise=noises)
    # impl keeps the original column order (timestep T-1 first); the reference indexes columns by t.
    return {key: to_numpy(out[key].flip(1) if out[key].ndim == 2 else out[key]) for key in BOUND_KEYS}


def _bound_ref(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
    x = _inputs(case, dtype_name, perturb)
    spec = case.process
    noises = perturb(rounded(_bound_noises(case), dtype_name), "noises")

    def model_fn(x_t: FloatArray, t: Any) -> FloatArray:
        return toy_model_numpy(x_t, spec.learned_variance, spec.var_type)

    out = ref("objectives").full_bound_bpd(
        reference_tables(spec, perturb),
        model_fn,
        x["x_start"],
        noises,
        model_mean_type=spec.mean_type,
        model_var_type=spec.var_type,
        clip_denoised=case.clip_denoised,
    )
    return {key: np.asarray(out[key]) for key in BOUND_KEYS}


# ---------------------------------------------------------------- Gaussian likelihood terms
GAUSSIAN_CASES = st.tuples(sp.SHAPES, sp.SEEDS)


def _gaussian_arrays(case: tuple[tuple[int, ...], int]) -> dict[str, FloatArray]:
    shape, seed = case
    rng = np.random.default_rng(seed)
    x = sp.pixel_grid(rng, shape)
    return {
        "m1": rng.standard_normal(shape),
        "lv1": rng.uniform(-15.0, 2.0, size=shape),
        "m2": rng.standard_normal(shape),
        "lv2": rng.uniform(-15.0, 2.0, size=shape),
        "z": 3.0 * rng.standard_normal(shape),
        "x": x,
        "means": x + 0.05 * rng.standard_normal(shape),
        "log_scales": rng.uniform(-7.0, 0.0, size=shape),
    }


def _gaussian_entry(name: str, impl_fn: Callable[..., torch.Tensor], ref_name: str) -> Entry:
    def args(values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if ref_name == "normal_kl":
            return (values["m1"], values["lv1"], values["m2"], values["lv2"]), {}
        if ref_name == "approx_standard_normal_cdf":
            return (values["z"],), {}
        return (values["x"],), {"means": values["means"], "log_scales": values["log_scales"]}

    def run_impl(case: tuple[tuple[int, ...], int], dtype: torch.dtype, device: torch.device) -> Outputs:
        values = {k: to_torch(v, dtype, device) for k, v in _gaussian_arrays(case).items()}
        positional, keywords = args(values)
        return {"out": to_numpy(impl_fn(*positional, **keywords))}

    def run_ref(case: tuple[tuple[int, ...], int], dtype_name: str, perturb: Perturb) -> Outputs:
        raw = _gaussian_arrays(case)
        # x selects the bin (edges at ±0.999): it is data, exact on the 8-bit grid, so it is not perturbed.
        values = {
            k: (rounded(v, dtype_name) if k == "x" else perturb(rounded(v, dtype_name), k))
            for k, v in raw.items()
        }
        positional, keywords = args(values)
        return {"out": np.asarray(getattr(ref("gaussian"), ref_name)(*positional, **keywords))}

    def magnitude(case: tuple[tuple[int, ...], int], dtype_name: str) -> Outputs:
        v = {k: rounded(a, dtype_name) for k, a in _gaussian_arrays(case).items()}
        if ref_name == "normal_kl":
            return {"out": mag.kl_terms(v["lv1"], v["lv2"])}
        if ref_name == "approx_standard_normal_cdf":
            return {"out": mag.cdf_terms(v["z"])}
        return {"out": mag.log_likelihood_terms(v["x"], v["means"], v["log_scales"])}

    return Entry(
        name,
        impl_fn,
        f"gaussian.{ref_name}",
        GAUSSIAN_CASES,
        run_impl,
        run_ref,
        "likelihood",
        (impl_fn,),
        magnitude=magnitude,
    )


# ---------------------------------------------------------------- timestep samplers (float64 on device)
@dataclass(frozen=True)
class SamplerCase:
    """A small process length, history size, a stream of (t, loss) batches and a seed."""

    num_timesteps: int
    history_per_term: int
    batches: tuple[tuple[tuple[int, float], ...], ...]
    seed: int
    uniform_prob: float


@st.composite
def sampler_cases(draw: st.DrawFn) -> SamplerCase:
    """Histories that are sometimes warmed up (every t seen K times) and sometimes not."""
    steps = draw(st.integers(1, 8))
    k = draw(st.integers(1, 4))
    pair = st.tuples(st.integers(0, steps - 1), st.floats(0.0, 10.0, allow_nan=False))
    batches = draw(st.lists(st.lists(pair, max_size=12).map(tuple), max_size=4))
    if draw(st.booleans()):  # warm every timestep up
        batches.append(tuple((t, 1.0 + 0.5 * t) for t in range(steps) for _ in range(k)))
    return SamplerCase(steps, k, tuple(batches), draw(sp.SEEDS), draw(st.sampled_from((0.001, 0.0, 0.3))))


def _history_ref(case: SamplerCase) -> tuple[FloatArray, NDArray[np.int64]]:
    timesteps = ref("timesteps")
    history = np.zeros((case.num_timesteps, case.history_per_term))
    counts = np.zeros(case.num_timesteps, dtype=np.int64)
    for batch in case.batches:
        t = np.asarray([p[0] for p in batch], dtype=np.int64)
        losses = np.asarray([p[1] for p in batch], dtype=np.float64)
        history, counts = timesteps.update_loss_history(history, counts, t, losses)
    return np.asarray(history), np.asarray(counts)


def _resampler(case: SamplerCase, local: bool, device: torch.device) -> impl.LossSecondMomentResampler:
    sampler = impl.LossSecondMomentResampler(
        impl_diffusion(
            sp.ProcessSpec("cosine", case.num_timesteps, None, "EPSILON", "FIXED_SMALL", "MSE", False)
        ),
        history_per_term=case.history_per_term,
        uniform_prob=case.uniform_prob,
    )
    for batch in case.batches:
        t = torch.tensor([p[0] for p in batch], dtype=torch.long, device=device)
        losses = torch.tensor([p[1] for p in batch], dtype=torch.float64, device=device)
        if local:
            sampler.update_with_local_losses(t, losses)
        else:
            sampler.update_with_all_losses(t.tolist(), losses.tolist())
    return sampler


def _history_impl(local: bool) -> Callable[[SamplerCase, torch.dtype, torch.device], Outputs]:
    def run(case: SamplerCase, dtype: torch.dtype, device: torch.device) -> Outputs:
        sampler = _resampler(case, local, device)
        return {"history": to_numpy(sampler._loss_history), "counts": to_numpy(sampler._loss_counts)}

    return run


def _history_reference(case: SamplerCase, dtype_name: str, perturb: Perturb) -> Outputs:
    history, counts = _history_ref(case)
    return {"history": history, "counts": counts.astype(np.float64)}


def _weights_impl(case: SamplerCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    weights = _resampler(case, True, device).weights()
    return {"p": weights / weights.sum()}


def _weights_ref(case: SamplerCase, dtype_name: str, perturb: Perturb) -> Outputs:
    history, counts = _history_ref(case)
    return {
        "p": np.asarray(
            ref("timesteps").loss_second_moment_probs(perturb(history, "history"), counts, case.uniform_prob)
        )
    }


def _uniform_weights_impl(case: SamplerCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    spec = sp.ProcessSpec("cosine", case.num_timesteps, None, "EPSILON", "FIXED_SMALL", "MSE", False)
    weights = impl.UniformSampler(impl_diffusion(spec)).weights()
    return {"p": weights / weights.sum()}


def _uniform_weights_ref(case: SamplerCase, dtype_name: str, perturb: Perturb) -> Outputs:
    return {"p": np.asarray(ref("timesteps").uniform_timestep_probs(case.num_timesteps))}


def _sample_impl(case: SamplerCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    sampler = _resampler(case, True, device)
    generator = torch.Generator(device=device).manual_seed(case.seed)
    t, weights = sampler.sample(7, device, generator=generator)
    return {"t": to_numpy(t), "weights": to_numpy(weights)}


def _sample_ref(case: SamplerCase, dtype_name: str, perturb: Perturb) -> Outputs:
    timesteps = ref("timesteps")
    history, counts = _history_ref(case)
    p = timesteps.loss_second_moment_probs(history, counts, case.uniform_prob)
    # ScheduleSampler.sample draws its uniforms as float64 from the generator: the same stream here.
    uniforms = torch.rand(7, generator=torch.Generator().manual_seed(case.seed), dtype=torch.float64).numpy()
    t = np.asarray(timesteps.sample_timesteps(p, uniforms))
    weights = np.asarray(timesteps.importance_weights(perturb(np.asarray(p), "p"), t))
    # The API returns the weights as float32 (as the original does): compare with their rounding.
    return {"t": t.astype(np.float64), "weights": rounded(weights, "float32")}


def _sample_fn_impl(case: SamplerCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    rng = np.random.default_rng(case.seed)
    p = rng.dirichlet(np.ones(case.num_timesteps))
    u = rng.random(9)
    t = impl_timesteps.sample_timesteps(torch.as_tensor(p, device=device), torch.as_tensor(u, device=device))
    w = impl_timesteps.importance_weights(torch.as_tensor(p, device=device), t)
    return {"t": to_numpy(t), "weights": to_numpy(w)}


def _sample_fn_ref(case: SamplerCase, dtype_name: str, perturb: Perturb) -> Outputs:
    rng = np.random.default_rng(case.seed)
    p = rng.dirichlet(np.ones(case.num_timesteps))
    u = rng.random(9)
    timesteps = ref("timesteps")
    t = np.asarray(timesteps.sample_timesteps(p, u))
    return {
        "t": t.astype(np.float64),
        "weights": np.asarray(timesteps.importance_weights(perturb(p, "p"), t)),
    }


# ---------------------------------------------------------------- rounding magnitudes of the bound entries
def _case_vb_terms(case: sp.StepCase, dtype_name: str) -> FloatArray:
    x = _inputs(case, dtype_name, identity)
    spec = case.process
    return mag.vb_terms(
        reference_tables(spec),
        x["model_output"],
        x["x_start"],
        x["x_t"],
        np.asarray(case.t),
        spec.mean_type,
        spec.var_type,
        case.clip_denoised,
    )


def _vb_magnitude(case: sp.StepCase, dtype_name: str) -> Outputs:
    return {"output": _case_vb_terms(case, dtype_name)}


def _losses_magnitude(case: sp.StepCase, dtype_name: str) -> Outputs:
    spec = case.process
    x = _inputs(case, dtype_name, identity)
    t = np.asarray(case.t)
    tab = reference_tables(spec)
    x_t = ref("process").q_sample(tab, x["x_start"], t, x["noise"])
    terms = mag.vb_terms(tab, x["model_output"], x["x_start"], x_t, t, spec.mean_type, spec.var_type, False)
    factor = {"RESCALED_KL": spec.num_timesteps, "RESCALED_MSE": spec.num_timesteps / 1000.0}
    return {"vb": terms * factor.get(spec.loss_type, 1.0), "loss": terms * factor.get(spec.loss_type, 1.0)}


def _prior_magnitude(case: sp.StepCase, dtype_name: str) -> Outputs:
    x = _inputs(case, dtype_name, identity)
    return {"prior_bpd": mag.prior_terms(reference_tables(case.process), x["x_start"])}


def _bound_magnitude(case: sp.StepCase, dtype_name: str) -> Outputs:
    spec = case.process
    x = _inputs(case, dtype_name, identity)
    tab = reference_tables(spec)
    noises = rounded(_bound_noises(case), dtype_name)
    columns = []
    for step in range(spec.num_timesteps):
        t = np.full(case.shape[0], step, dtype=np.int64)
        x_t = np.asarray(ref("process").q_sample(tab, x["x_start"], t, noises[step]))
        output = toy_model_numpy(x_t, spec.learned_variance, spec.var_type)
        columns.append(
            mag.vb_terms(tab, output, x["x_start"], x_t, t, spec.mean_type, spec.var_type, case.clip_denoised)
        )
    vb = np.stack(columns, axis=1)
    prior = mag.prior_terms(tab, x["x_start"])
    return {"vb": vb, "prior_bpd": prior, "total_bpd": vb.sum(axis=1) + prior}


def _guided_xstart_magnitude(case: sp.StepCase, dtype_name: str) -> FloatArray:
    """Rounding magnitude of the score-guided x̂_0 (properties.magnitudes.guided_xstart_terms)."""
    out, tab, x = _pmv_ref_raw(case, dtype_name, identity)
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
    out, tab, x = _pmv_ref_raw(case, dtype_name, identity)
    t = np.asarray(case.t)
    if case.use_cond_fn:
        out = dict(ref("steps").condition_score(tab, out, x["x_t"], t, x["grad"]))
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
    out, tab, x = _pmv_ref_raw(case, dtype_name, identity)
    t = np.asarray(case.t)
    shape = (-1,) + (1,) * (x["x_t"].ndim - 1)
    abar_next = np.asarray(tab.alphas_cumprod_next)[t].reshape(shape)
    return {"sample": np.sqrt(1.0 - abar_next) * mag.eps_from_xstart_terms(tab, out, x["x_t"], t)}


# ---------------------------------------------------------------- the catalogue
F64 = ("float64",)
SAMPLERS = sampler_cases()

CATALOGUE: tuple[Entry, ...] = (
    Entry(
        "get_named_beta_schedule",
        impl.get_named_beta_schedule,
        "schedule.get_named_beta_schedule",
        SCHEDULE_CASES,
        _schedule_impl,
        _schedule_ref,
        "schedule",
        (impl.get_named_beta_schedule,),
        F64,
        True,
    ),
    Entry(
        "betas_for_alpha_bar",
        impl.betas_for_alpha_bar,
        "schedule.betas_for_alpha_bar",
        ALPHA_BAR_CASES,
        _alpha_bar_impl,
        _alpha_bar_ref,
        "schedule",
        (impl.betas_for_alpha_bar,),
        F64,
        True,
    ),
    Entry(
        "tables",
        GD.tables_for,
        "schedule.diffusion_tables",
        sp.processes(),
        _tables_impl,
        _tables_ref,
        "tables",
        (GD, GD.tables_for, impl_schedule.diffusion_tables),
    ),
    Entry(
        "space_timesteps",
        impl.space_timesteps,
        "respacing.space_timesteps",
        _spacing_cases(),
        _space_impl,
        _space_ref,
        "exact",
        (impl.space_timesteps,),
        F64,
        True,
    ),
    Entry(
        "SpacedDiffusion",
        impl.SpacedDiffusion,
        "respacing.respaced_betas",
        RESPACED_PROCESSES,
        _respaced_impl,
        _respaced_ref,
        "respaced_betas",
        (impl.SpacedDiffusion, impl_respacing.respaced_betas),
        F64,
    ),
    Entry(
        "q_mean_variance",
        GD.q_mean_variance,
        "process.q_mean_variance",
        STEP_CASES,
        _q_mean_variance_impl,
        _q_mean_variance_ref,
        "affine_step",
        (GD.q_mean_variance,),
    ),
    Entry(
        "q_sample",
        GD.q_sample,
        "process.q_sample",
        STEP_CASES,
        _q_sample_impl,
        _q_sample_ref,
        "affine_step",
        (GD.q_sample,),
    ),
    Entry(
        "q_posterior_mean_variance",
        GD.q_posterior_mean_variance,
        "process.q_posterior_mean_variance",
        STEP_CASES,
        _posterior_impl,
        _posterior_ref,
        "affine_step",
        (GD.q_posterior_mean_variance,),
    ),
    _predictor_entry(
        "_predict_xstart_from_eps", GD._predict_xstart_from_eps, "predict_xstart_from_eps", "noise"
    ),
    _predictor_entry(
        "_predict_eps_from_xstart", GD._predict_eps_from_xstart, "predict_eps_from_xstart", "x_start"
    ),
    _predictor_entry(
        "_predict_xstart_from_xprev",
        GD._predict_xstart_from_xprev,
        "predict_xstart_from_xprev",
        "model_output",
    ),
    Entry(
        "p_mean_variance",
        GD.p_mean_variance,
        "process.p_mean_variance",
        STEP_CASES,
        _pmv_impl,
        _pmv_ref,
        "reverse_step",
        (
            GD.p_mean_variance,
            GD._scale_timesteps,
            GD._model_timesteps,
            impl.SpacedDiffusion._scale_timesteps,
            impl.SpacedDiffusion._model_timesteps,
        ),
    ),
    Entry(
        "condition_mean",
        GD.condition_mean,
        "steps.condition_mean",
        STEP_CASES,
        _condition_mean_impl,
        _condition_mean_ref,
        "reverse_step",
        (GD.condition_mean,),
    ),
    Entry(
        "condition_score",
        GD.condition_score,
        "steps.condition_score",
        STEP_CASES,
        _condition_score_impl,
        _condition_score_ref,
        "reverse_step",
        (GD.condition_score,),
        magnitude=_condition_score_magnitude,
    ),
    Entry(
        "p_sample",
        GD.p_sample,
        "steps.p_sample_step",
        STEP_CASES,
        _step_impl("ancestral"),
        _step_ref("ancestral"),
        "reverse_step",
        (GD.p_sample,),
    ),
    Entry(
        "ddim_sample",
        GD.ddim_sample,
        "steps.ddim_step",
        STEP_CASES,
        _step_impl("ddim"),
        _step_ref("ddim"),
        "reverse_step",
        (GD.ddim_sample,),
        magnitude=_ddim_magnitude,
    ),
    Entry(
        "ddim_reverse_sample",
        GD.ddim_reverse_sample,
        "steps.ddim_reverse_step",
        STEP_CASES,
        _step_impl("reverse"),
        _step_ref("reverse"),
        "reverse_step",
        (GD.ddim_reverse_sample,),
        magnitude=_ddim_reverse_magnitude,
    ),
    Entry(
        "training_losses",
        GD.training_losses,
        "objectives.training_losses",
        STEP_CASES,
        _losses_impl,
        _losses_ref,
        "bound",
        (GD.training_losses, impl_objectives.training_losses),
        magnitude=_losses_magnitude,
    ),
    Entry(
        "vb_terms_bpd",
        GD.vb_terms_bpd,
        "objectives.vb_term_bpd",
        STEP_CASES,
        _vb_impl,
        _vb_ref,
        "bound",
        (GD.vb_terms_bpd, impl_objectives.vb_term_bpd),
        magnitude=_vb_magnitude,
    ),
    Entry(
        "prior_bpd",
        GD.prior_bpd,
        "objectives.prior_bpd",
        STEP_CASES,
        _prior_impl,
        _prior_ref,
        "bound",
        (GD.prior_bpd,),
        magnitude=_prior_magnitude,
    ),
    Entry(
        "calc_bpd_loop",
        GD.calc_bpd_loop,
        "objectives.full_bound_bpd",
        BOUND_CASES,
        _bound_impl,
        _bound_ref,
        "bound",
        (GD.calc_bpd_loop, impl.calc_bpd_loop),
        magnitude=_bound_magnitude,
    ),
    _gaussian_entry("normal_kl", impl.normal_kl, "normal_kl"),
    _gaussian_entry(
        "approx_standard_normal_cdf", impl.approx_standard_normal_cdf, "approx_standard_normal_cdf"
    ),
    _gaussian_entry(
        "discretized_gaussian_log_likelihood",
        impl.discretized_gaussian_log_likelihood,
        "discretized_gaussian_log_likelihood",
    ),
    Entry(
        "update_with_all_losses",
        impl.LossSecondMomentResampler.update_with_all_losses,
        "timesteps.update_loss_history",
        SAMPLERS,
        _history_impl(False),
        _history_reference,
        "exact",
        (impl.LossSecondMomentResampler.update_with_all_losses, impl_timesteps.update_loss_history),
        F64,
    ),
    Entry(
        "update_with_local_losses",
        impl.LossSecondMomentResampler.update_with_local_losses,
        "timesteps.update_loss_history",
        SAMPLERS,
        _history_impl(True),
        _history_reference,
        "exact",
        (impl.LossSecondMomentResampler.update_with_local_losses,),
        F64,
    ),
    Entry(
        "LossSecondMomentResampler.weights",
        impl.LossSecondMomentResampler.weights,
        "timesteps.loss_second_moment_probs",
        SAMPLERS,
        _weights_impl,
        _weights_ref,
        "timestep_probs",
        (
            impl.LossSecondMomentResampler,
            impl.LossSecondMomentResampler.weights,
            impl.LossSecondMomentResampler.probabilities,
            impl_timesteps.loss_second_moment_probs,
        ),
        F64,
    ),
    Entry(
        "UniformSampler.weights",
        impl.UniformSampler.weights,
        "timesteps.uniform_timestep_probs",
        SAMPLERS,
        _uniform_weights_impl,
        _uniform_weights_ref,
        "timestep_probs",
        (impl.UniformSampler, impl.UniformSampler.weights, impl.ScheduleSampler.probabilities),
        F64,
    ),
    Entry(
        "ScheduleSampler.sample",
        impl.ScheduleSampler.sample,
        "timesteps.sample_timesteps",
        SAMPLERS,
        _sample_impl,
        _sample_ref,
        "timestep_probs",
        (impl.ScheduleSampler.sample,),
        F64,
        # The uniforms come from the generator's stream, which differs between CPU and CUDA; the sampling
        # math itself (sample_timesteps, importance_weights) is catalogued on every device below.
        devices=("cpu",),
    ),
    Entry(
        "sample_timesteps",
        impl_timesteps.sample_timesteps,
        "timesteps.sample_timesteps",
        SAMPLERS,
        _sample_fn_impl,
        _sample_fn_ref,
        "timestep_probs",
        (impl_timesteps.sample_timesteps, impl_timesteps.importance_weights),
        F64,
    ),
)
