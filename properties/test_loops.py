"""The loops over the catalogued per-step functions: reproducibility, determinism, wiring, the bound's sum."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import impl
from impl.sampling.loops import ddim_reverse_sample_loop_progressive
from properties import strategies as sp
from properties.compare import Perturb, assert_outputs_close, identity, reference_sensitivity
from properties.marshal import (
    impl_diffusion,
    reference_model_timesteps,
    reference_tables,
    to_numpy,
    toy_model_numpy,
    toy_model_torch,
)
from reference.process import p_mean_variance
from reference.steps import (
    ddim_inversion,
    ddim_reverse_step,
    ddim_step,
    initial_latent,
    p_sample_step,
    tempered_noise,
)
from testing.assertions import assert_close
from testing.tolerances import ReferenceOp, Sampling, impl_vs_reference, tolerance

LOOP_CASES = sp.step_cases(max_steps=10)


def _model(spec: sp.ProcessSpec) -> tuple[Callable[..., torch.Tensor], list[torch.Tensor]]:
    seen: list[torch.Tensor] = []

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(t)
        return toy_model_torch(x, spec.learned_variance, spec.var_type)

    return model, seen


@given(case=LOOP_CASES)
@settings(max_examples=10)
def test_p_sample_loop_is_reproducible_with_a_generator(case: sp.StepCase) -> None:
    """The same generator seed gives the same sample; another seed another one (unclipped, so x_0 depends
    on x_T even when T = 1)."""
    diffusion = impl_diffusion(case.process)
    model, _ = _model(case.process)
    runs = [
        diffusion.p_sample_loop(
            model, case.shape, clip_denoised=False, generator=torch.Generator().manual_seed(seed)
        )
        for seed in (case.seed, case.seed, case.seed + 1)
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


@given(case=LOOP_CASES)
@settings(max_examples=10)
def test_ddim_eta0_is_deterministic(case: sp.StepCase) -> None:
    """With η = 0 and a given x_T, DDIM uses no randomness: two different generators give the same x_0."""
    diffusion = impl_diffusion(case.process)
    model, _ = _model(case.process)
    x_t = torch.randn(case.shape, generator=torch.Generator().manual_seed(case.seed), dtype=torch.float64)
    first = diffusion.ddim_sample_loop(
        model, case.shape, noise=x_t, generator=torch.Generator().manual_seed(1)
    )
    second = diffusion.ddim_sample_loop(
        model, case.shape, noise=x_t, generator=torch.Generator().manual_seed(2)
    )
    assert torch.equal(first, second)


TEMPERATURES = st.sampled_from((1.0, 0.5, 1.7))


@given(case=LOOP_CASES, ddim=st.booleans(), temperature=TEMPERATURES, init_temperature=TEMPERATURES)
@settings(max_examples=10)
def test_progressive_loop_chains_reference_steps(
    case: sp.StepCase, ddim: bool, temperature: float, init_temperature: float
) -> None:
    """Each yielded step equals the reference step at t = T−1 … 0 from the previous impl sample, with the
    model called at the reference's model timesteps and the step noise drawn in order from the generator,
    tempered by τ [S45]; the first step starts from x_T = τ₀·z [S46]."""
    spec = case.process
    diffusion = impl_diffusion(spec)
    model, seen = _model(spec)
    x = torch.randn(case.shape, generator=torch.Generator().manual_seed(case.seed), dtype=torch.float64)
    twin = torch.Generator().manual_seed(case.seed + 1)
    generator = torch.Generator().manual_seed(case.seed + 1)
    if ddim:
        outputs = list(
            diffusion.ddim_sample_loop_progressive(
                model,
                case.shape,
                noise=x,
                clip_denoised=case.clip_denoised,
                eta=case.eta,
                generator=generator,
                temperature=temperature,
                init_temperature=init_temperature,
            )
        )
    else:
        outputs = list(
            diffusion.p_sample_loop_progressive(
                model,
                case.shape,
                noise=x,
                clip_denoised=case.clip_denoised,
                generator=generator,
                temperature=temperature,
                init_temperature=init_temperature,
            )
        )
    assert len(outputs) == spec.num_timesteps
    previous = initial_latent(to_numpy(x), init_temperature)
    for index, out in enumerate(outputs):
        step = spec.num_timesteps - 1 - index
        t = np.full(case.shape[0], step, dtype=np.int64)
        assert np.array_equal(to_numpy(seen[index]), reference_model_timesteps(spec, t))
        needs_noise = not ddim or case.eta != 0.0
        z = to_numpy(torch.randn(case.shape, generator=twin, dtype=torch.float64)) if needs_noise else None
        x_prev = previous

        def reference_step(
            perturb: Perturb,
            x_prev: NDArray[np.float64] = x_prev,
            z: NDArray[np.float64] | None = z,
            t: NDArray[np.int64] = t,
        ) -> dict[str, NDArray[np.float64]]:
            tab = reference_tables(spec, perturb)
            xp = perturb(x_prev, "x_t")
            pmv = p_mean_variance(
                tab,
                toy_model_numpy(xp, spec.learned_variance, spec.var_type),
                xp,
                t,
                model_mean_type=spec.mean_type,
                model_var_type=spec.var_type,
                clip_denoised=case.clip_denoised,
            )
            noise = np.zeros(case.shape) if z is None else tempered_noise(z, temperature)
            sample = ddim_step(tab, pmv, xp, t, noise, case.eta) if ddim else p_sample_step(pmv, t, noise)
            return {"sample": np.asarray(sample), "pred_xstart": np.asarray(pmv["pred_xstart"])}

        expected = reference_step(identity)
        actual = {"sample": to_numpy(out["sample"]), "pred_xstart": to_numpy(out["pred_xstart"])}
        seed = zlib.crc32(repr((case, index)).encode())
        assert_outputs_close(
            actual,
            expected,
            impl_vs_reference("float64", ReferenceOp.REVERSE_STEP),
            sensitivity=reference_sensitivity(reference_step, expected, seed),
            inputs=(case, ddim, step),
            label="loop step",
        )
        previous = actual["sample"]


@given(case=LOOP_CASES, ddim=st.booleans())
@settings(max_examples=10)
def test_unit_temperatures_are_the_untempered_loop_bit_for_bit(case: sp.StepCase, ddim: bool) -> None:
    """τ = τ₀ = 1 given explicitly reproduces a hand-written chain of the steps drawing their own noise
    from the same generator (the sampler before temperatures existed), bit for bit."""
    diffusion = impl_diffusion(case.process)
    model, _ = _model(case.process)
    eta = case.eta if ddim else 0.0
    loop = diffusion.ddim_sample_loop if ddim else diffusion.p_sample_loop
    kwargs = {"eta": eta} if ddim else {}
    actual = loop(
        model,
        case.shape,
        clip_denoised=case.clip_denoised,
        generator=torch.Generator().manual_seed(case.seed),
        temperature=1.0,
        init_temperature=1.0,
        **kwargs,
    )
    generator = torch.Generator().manual_seed(case.seed)
    x = torch.randn(case.shape, generator=generator)
    for i in range(case.process.num_timesteps - 1, -1, -1):
        t = torch.full((case.shape[0],), i, dtype=torch.long)
        with torch.no_grad():
            if ddim:
                out = diffusion.ddim_sample(model, x, t, case.clip_denoised, eta=eta, generator=generator)
            else:
                out = diffusion.p_sample(model, x, t, case.clip_denoised, generator=generator)
        x = out["sample"]
    assert torch.equal(actual, x)


@given(case=LOOP_CASES)
@settings(max_examples=10)
def test_ddim_reverse_loop_chains_reference_inversion_steps(case: sp.StepCase) -> None:
    """Each step of the inversion loop [S47] equals the reference step [S31] at t = 0 … T−1 from the
    previous impl sample, the model called at the reference's model timesteps; the method returns the
    last sample of the progressive loop."""
    spec = case.process
    diffusion = impl_diffusion(spec)
    model, seen = _model(spec)
    x0 = torch.randn(case.shape, generator=torch.Generator().manual_seed(case.seed), dtype=torch.float64)
    outputs = list(ddim_reverse_sample_loop_progressive(diffusion, model, x0))
    assert len(outputs) == spec.num_timesteps
    previous = to_numpy(x0)
    for step, out in enumerate(outputs):
        t = np.full(case.shape[0], step, dtype=np.int64)
        assert np.array_equal(to_numpy(seen[step]), reference_model_timesteps(spec, t))
        x_prev = previous

        def reference_step(
            perturb: Perturb, x_prev: NDArray[np.float64] = x_prev, t: NDArray[np.int64] = t
        ) -> dict[str, NDArray[np.float64]]:
            tab = reference_tables(spec, perturb)
            xp = perturb(x_prev, "x_t")
            pmv = p_mean_variance(
                tab,
                toy_model_numpy(xp, spec.learned_variance, spec.var_type),
                xp,
                t,
                model_mean_type=spec.mean_type,
                model_var_type=spec.var_type,
                clip_denoised=True,
            )
            sample = ddim_reverse_step(tab, pmv, xp, t)
            return {"sample": np.asarray(sample), "pred_xstart": np.asarray(pmv["pred_xstart"])}

        expected = reference_step(identity)
        actual = {"sample": to_numpy(out["sample"]), "pred_xstart": to_numpy(out["pred_xstart"])}
        assert_outputs_close(
            actual,
            expected,
            impl_vs_reference("float64", ReferenceOp.REVERSE_STEP),
            sensitivity=reference_sensitivity(
                reference_step, expected, zlib.crc32(repr((case, step)).encode())
            ),
            inputs=(case, step),
            label="inversion step",
        )
        previous = actual["sample"]
    seen.clear()
    assert torch.equal(diffusion.ddim_reverse_sample_loop(model, x0), outputs[-1]["sample"])


@given(case=LOOP_CASES)
@settings(max_examples=10)
def test_encode_then_decode_returns_the_point_mass(case: sp.StepCase) -> None:
    """For ε̂ exact for the point mass x₀* (ε̂(x_t) = (x_t − √ᾱ_t x₀*)/√(1 − ᾱ_t)), DDIM inversion of x₀*
    gives the reference inversion's latent [S47], and DDIM sampling from it returns x₀* [S30]."""
    spec = case.process
    spec = sp.ProcessSpec(
        schedule=case.process.schedule,
        base_steps=case.process.base_steps,
        kept=case.process.kept,
        mean_type="EPSILON",
        var_type="FIXED_SMALL",
        loss_type="MSE",
        rescale_timesteps=False,
    )
    diffusion = impl_diffusion(spec)
    tab = reference_tables(spec)
    rng = np.random.default_rng(case.seed)
    point = rng.uniform(-1.0, 1.0, size=case.shape)
    point_t = torch.from_numpy(point)
    index = {int(m): i for i, m in enumerate(reference_model_timesteps(spec, np.arange(spec.num_timesteps)))}

    def exact_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        steps = [index[int(v)] for v in t.tolist()]
        abar = torch.tensor(tab.alphas_cumprod[steps], dtype=torch.float64).reshape(-1, 1, 1, 1)
        return (x - abar.sqrt() * point_t) / (1.0 - abar).sqrt()

    def exact_pmv(x: NDArray[np.float64], t: NDArray[np.int64]) -> dict[str, NDArray[np.float64]]:
        abar = tab.alphas_cumprod[t].reshape(-1, 1, 1, 1)
        eps = (x - np.sqrt(abar) * point) / np.sqrt(1.0 - abar)
        return p_mean_variance(
            tab, eps, x, t, model_mean_type="EPSILON", model_var_type="FIXED_SMALL", clip_denoised=True
        )

    latent = diffusion.ddim_reverse_sample_loop(exact_eps, point_t)
    budget = tolerance(Sampling.POINT_MASS_ROUND_TRIP_FLOAT64)
    assert_close(to_numpy(latent), ddim_inversion(tab, exact_pmv, point), tol=budget, inputs=(case, "latent"))
    decoded = diffusion.ddim_sample_loop(exact_eps, case.shape, noise=latent)
    assert_close(to_numpy(decoded), point, tol=budget, inputs=(case, "round trip"))


@given(case=LOOP_CASES)
@settings(max_examples=10)
def test_calc_bpd_loop_total_is_prior_plus_terms(case: sp.StepCase) -> None:
    """total_bpd = prior_bpd + Σ_t L_t, and column T-1-t is vb_terms_bpd at t with noise[t] [S20]."""
    spec = case.process
    diffusion = impl_diffusion(spec)
    model, _ = _model(spec)
    x_start = torch.tensor(sp.case_arrays(case).x_start)
    noise = torch.randn(
        (spec.num_timesteps, *case.shape),
        generator=torch.Generator().manual_seed(case.seed),
        dtype=torch.float64,
    )
    out = diffusion.calc_bpd_loop(model, x_start, case.clip_denoised, noise=noise)
    total = out["prior_bpd"] + out["vb"].sum(dim=1)
    # The same T + 1 float64 numbers summed in another order: <= T ulps of the sum of their magnitudes.
    bound = spec.num_timesteps * 2.22e-16 * (out["prior_bpd"].abs() + out["vb"].abs().sum(dim=1))
    assert bool(((out["total_bpd"] - total).abs() <= bound).all())
    step = int(case.t[0])
    t = torch.full((case.shape[0],), step, dtype=torch.long)
    x_t = diffusion.q_sample(x_start, t, noise[step])
    direct = diffusion.vb_terms_bpd(model, x_start, x_t, t, case.clip_denoised)["output"]
    # The same computation: bitwise equal.
    assert torch.equal(direct, out["vb"][:, spec.num_timesteps - 1 - step])


@given(case=sp.step_cases())
@settings(max_examples=10)
def test_half_precision_inputs_compute_in_float32(case: sp.StepCase) -> None:
    """bf16 inputs take the float32 path: the result is float32 and equals the float32 computation on the
    same (upcast) values bit for bit, so no table is ever rounded to 16 bits."""
    diffusion = impl_diffusion(case.process)
    arrays = sp.case_arrays(case)
    x = torch.tensor(arrays.x_start).to(torch.bfloat16)
    noise = torch.tensor(arrays.noise).to(torch.bfloat16)
    t = torch.tensor(case.t)
    half = diffusion.q_sample(x, t, noise)
    single = diffusion.q_sample(x.float(), t, noise.float())
    assert half.dtype == torch.float32
    assert torch.equal(half, single)
    eps_half = diffusion._predict_eps_from_xstart(half, t, x)
    assert eps_half.dtype == torch.float32
    assert torch.equal(eps_half, diffusion._predict_eps_from_xstart(single, t, x.float()))


def test_ddim_eta_one_at_the_last_step_is_finite_in_float32() -> None:
    """At η = 1, t = T − 1 the DDIM noise coefficient 1 − ᾱ_prev − σ² cancels to ~0 [S30]; float32 rounding
    once made it negative and the step NaN.  Both sides clamp it at 0: the step must stay finite and agree
    with the float64 step (the coefficient's contribution is then ≤ √(few eps), far below 1e-2)."""
    diffusion32 = impl.SpacedDiffusion(
        use_timesteps=[0, 999],
        betas=impl.get_named_beta_schedule("linear", 1000),
        model_mean_type=impl.ModelMeanType.EPSILON,
        model_var_type=impl.ModelVarType.FIXED_SMALL,
        loss_type=impl.LossType.MSE,
    )
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 2, 2, generator=gen, dtype=torch.float64)
    eps_model = torch.randn(64, 1, 2, 2, generator=gen, dtype=torch.float64)
    z = torch.randn(64, 1, 2, 2, generator=gen, dtype=torch.float64)
    t = torch.ones(64, dtype=torch.long)

    def model(x_in: torch.Tensor, t_in: torch.Tensor) -> torch.Tensor:
        return eps_model.to(x_in.dtype)

    out32 = diffusion32.ddim_sample(model, x.float(), t, clip_denoised=False, eta=1.0, noise=z.float())
    out64 = diffusion32.ddim_sample(model, x, t, clip_denoised=False, eta=1.0, noise=z)
    assert bool(torch.isfinite(out32["sample"]).all())
    assert bool(torch.isfinite(out64["sample"]).all())
    assert float((out32["sample"].double() - out64["sample"]).abs().max()) < 1e-2
