"""v-prediction, min-SNR-γ weighting and the VLB weight λ in impl [S40]–[S44].

`training_losses` with the options, v-prediction through p_mean_variance / the steps / the bound, in both
dtype tiers, are catalogue entries (the process strategy draws VELOCITY, `loss_weighting`, `min_snr_gamma`
and `vlb_weight`).  Here: the pure v/SNR functions against the reference, the λ identities bit for bit,
and the options through every consumer (ancestral and DDIM loops, calc_bpd_loop, L_hybrid's
stop-gradient, the importance sampler)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import impl
import reference.objectives as ref_obj
import reference.process as ref_proc
from impl.diffusion import objectives as impl_obj
from impl.diffusion import process as impl_proc
from reference.schedule import diffusion_tables, get_named_beta_schedule
from testing.assertions import assert_close
from testing.tolerances import ReferenceOp, Sampling, impl_vs_reference, tolerance

PRECISION = {torch.float64: "float64", torch.float32: "float32"}
MEAN_TYPES = ("EPSILON", "START_X", "VELOCITY")
VAR_TYPES = ("LEARNED", "FIXED_SMALL", "FIXED_LARGE", "LEARNED_RANGE")


def _tables(schedule: str, steps: int) -> tuple[Any, Any]:
    host = diffusion_tables(get_named_beta_schedule(schedule, steps))
    diffusion = impl.GaussianDiffusion(
        betas=host.betas,
        model_mean_type=impl.ModelMeanType.EPSILON,
        model_var_type=impl.ModelVarType.FIXED_LARGE,
        loss_type=impl.LossType.MSE,
    )
    return host, diffusion


processes = st.sampled_from([("cosine", 10), ("cosine", 1000), ("cosine", 4000), ("linear", 1000)])


@settings(max_examples=25, deadline=None)
@given(process=processes, seed=st.integers(0, 2**31), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_v_formulas_match_the_reference(process: tuple[str, int], seed: int, dtype: torch.dtype) -> None:
    host, diffusion = _tables(*process)
    rng = np.random.default_rng(seed)
    T = host.num_timesteps
    t = np.array([0, 1, T - 1, *rng.integers(0, T, size=3)])
    x0 = rng.uniform(-1, 1, size=(6, 2, 2, 2))
    eps = rng.standard_normal(x0.shape)
    v = rng.standard_normal(x0.shape)
    x_t = rng.standard_normal(x0.shape) * 2
    # both sides see the same inputs, rounded to the tier's dtype first (AFFINE_STEP's budget)
    x0, eps, v, x_t = (torch.from_numpy(a).to(dtype).double().numpy() for a in (x0, eps, v, x_t))
    tab = diffusion.tables_for(torch.zeros((), dtype=dtype))
    tt = torch.from_numpy(t)
    tol = impl_vs_reference(PRECISION[dtype], ReferenceOp.AFFINE_STEP)
    a = np.sqrt(host.alphas_cumprod[t]).reshape(-1, 1, 1, 1)
    s = np.sqrt(1.0 - host.alphas_cumprod[t]).reshape(-1, 1, 1, 1)

    def on(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(dtype)

    cases = {
        "v": (
            impl_proc.velocity(tab, on(x0), tt, on(eps)),
            ref_proc.velocity(host, x0, t, eps),
            a * abs(eps) + s * abs(x0),
        ),
        "x0 from v": (
            impl_proc.predict_xstart_from_v(tab, on(x_t), tt, on(v)),
            ref_proc.predict_xstart_from_v(host, x_t, t, v),
            a * abs(x_t) + s * abs(v),
        ),
        "eps from v": (
            impl_proc.predict_eps_from_v(tab, on(x_t), tt, on(v)),
            ref_proc.predict_eps_from_v(host, x_t, t, v),
            s * abs(x_t) + a * abs(v),
        ),
    }
    for label, (got, want, scale) in cases.items():
        assert_close(got, want, tol=tol, scale=scale, label=label, inputs={"process": process, "t": t})
    snr_ref = ref_obj.signal_to_noise_ratio(host, t)
    assert_close(impl_obj.signal_to_noise_ratio(tab, tt), snr_ref, tol=tol, label="SNR", inputs={"t": t})
    snr_in = torch.from_numpy(snr_ref).to(dtype)
    for mean_type in MEAN_TYPES:
        got = impl_obj.min_snr_weight(snr_in, 5.0, impl.ModelMeanType[mean_type])
        want = ref_obj.min_snr_weight(snr_in.double().numpy(), 5.0, mean_type)
        assert_close(got, want, tol=tol, label=f"min-SNR weight {mean_type}", inputs={"snr": snr_ref})


@pytest.mark.parametrize("steps", [49, 61, 1000, 4000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vlb_weight_reproduces_rescaled_mse_and_mse_bit_for_bit(steps: int, dtype: torch.dtype) -> None:
    """λ = 1e-3 ≡ RESCALED_MSE and λ = 1/T ≡ MSE exactly (T = 61: 1e-3·T ≠ T/1000 in float64; T = 49:
    (1/T)·T ≠ 1), plain and respaced."""
    for respacing in ("", "10"):
        base = {
            "steps": steps,
            "learn_sigma": True,
            "noise_schedule": "cosine",
            "timestep_respacing": respacing,
        }
        rescaled = impl.create_gaussian_diffusion(**base, rescale_learned_sigmas=True)
        plain = impl.create_gaussian_diffusion(**base, rescale_learned_sigmas=False)
        T = rescaled.num_timesteps
        lam_hybrid = impl.create_gaussian_diffusion(**base, rescale_learned_sigmas=False, vlb_weight=1e-3)
        lam_one = impl.create_gaussian_diffusion(**base, rescale_learned_sigmas=True, vlb_weight=1.0 / T)
        gen = torch.Generator().manual_seed(steps)
        x0 = torch.rand((5, 3, 4, 4), generator=gen, dtype=dtype) * 2 - 1
        out = torch.randn((5, 6, 4, 4), generator=gen, dtype=dtype)
        t = torch.randint(0, T, (5,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen, dtype=dtype)

        def model(x: torch.Tensor, tm: torch.Tensor, out: torch.Tensor = out, **k: Any) -> torch.Tensor:
            return out

        for a, b in ((lam_hybrid, rescaled), (lam_one, plain)):
            la = a.training_losses(model, x0, t, noise=noise)
            lb = b.training_losses(model, x0, t, noise=noise)
            for key in lb:
                assert torch.equal(la[key], lb[key]), (steps, respacing, key)


def _eps_model(diffusion: Any, learned: bool) -> Any:
    def eps_model(x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        eps = torch.sin(2.0 * x) + 0.1 * t.to(x.dtype).view(-1, 1, 1, 1) / 1000.0
        if learned:
            return torch.cat([eps, torch.tanh(x)], dim=1)
        return eps

    return eps_model


def _matching_v_model(diffusion: Any, learned: bool) -> Any:
    """v̂ = √ᾱ ε̂ − √(1 − ᾱ) x̂_0(ε̂): defines the same p_θ as the ε-model."""
    eps_model = _eps_model(diffusion, learned)

    def v_model(x: torch.Tensor, t_model: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        out = eps_model(x, t_model)
        eps = out[:, : x.shape[1]]
        t = torch.as_tensor(np.searchsorted(diffusion.timestep_map_numpy, t_model.numpy()))
        a = torch.from_numpy(np.sqrt(diffusion.alphas_cumprod)[t.numpy()]).view(-1, 1, 1, 1)
        s = torch.from_numpy(np.sqrt(1 - diffusion.alphas_cumprod)[t.numpy()]).view(-1, 1, 1, 1)
        x0 = (x - s * eps) / a
        v = a * eps - s * x0
        return torch.cat([v, out[:, x.shape[1] :]], dim=1) if learned else v

    return v_model


@pytest.mark.parametrize("learned", [False, True])
def test_v_prediction_through_the_loops_and_the_bound(learned: bool) -> None:
    """Ancestral, DDIM and calc_bpd_loop give the same results with a v-model as with the matching ε-model
    (float64; both parameterisations reach x̂_0 through one division by √ᾱ_t, so they agree to ~1e-10)."""
    flags = {"steps": 40, "learn_sigma": learned, "noise_schedule": "cosine", "timestep_respacing": "10"}
    by_eps = impl.create_gaussian_diffusion(**flags)
    by_v = impl.create_gaussian_diffusion(**flags, predict_v=True)
    assert by_v.model_mean_type is impl.ModelMeanType.VELOCITY
    by_v.timestep_map_numpy = np.asarray(by_v.timestep_map)  # type: ignore[attr-defined]
    eps_model, v_model = _eps_model(by_eps, learned), _matching_v_model(by_v, learned)
    shape = (3, 2, 4, 4)
    tol = tolerance(Sampling.VELOCITY_VS_EPS_LOOPS)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for loop in ("p_sample_loop", "ddim_sample_loop"):
        kwargs: dict[str, Any] = {"noise": noise, "clip_denoised": False, "device": "cpu"}
        a = getattr(by_eps, loop)(eps_model, shape, generator=torch.Generator().manual_seed(1), **kwargs)
        b = getattr(by_v, loop)(v_model, shape, generator=torch.Generator().manual_seed(1), **kwargs)
        assert a.dtype == torch.float64
        assert_close(b, a, tol=tol, label=loop)
    x0 = torch.rand(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    ba = by_eps.calc_bpd_loop(eps_model, x0, clip_denoised=False, generator=torch.Generator().manual_seed(3))
    bb = by_v.calc_bpd_loop(v_model, x0, clip_denoised=False, generator=torch.Generator().manual_seed(3))
    for key in ("total_bpd", "vb", "mse", "xstart_mse"):
        assert_close(bb[key], ba[key], tol=tol, label=f"calc_bpd_loop {key}")


def test_stop_gradient_holds_with_velocity_min_snr_and_vlb_weight() -> None:
    """L_hybrid's VLB term trains only the variance channels [S22], with every new option on."""
    diffusion = impl.create_gaussian_diffusion(
        steps=100,
        learn_sigma=True,
        noise_schedule="cosine",
        predict_v=True,
        loss_weighting="min_snr",
        vlb_weight=0.3,
    )
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand((4, 1, 3, 3), generator=gen, dtype=torch.float64) * 2 - 1
    t = torch.tensor([0, 5, 50, 99])
    out = torch.randn((4, 2, 3, 3), generator=gen, dtype=torch.float64, requires_grad=True)
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    losses = diffusion.training_losses(lambda x, tm, **k: out, x0, t, noise=noise)
    (g_vb,) = torch.autograd.grad(losses["vb"].sum(), out, retain_graph=True)
    (g_mse,) = torch.autograd.grad(losses["mse"].sum(), out)
    assert torch.count_nonzero(g_vb[:, :1]) == 0 and torch.count_nonzero(g_vb[:, 1:]) > 0
    assert torch.count_nonzero(g_mse[:, 1:]) == 0 and torch.count_nonzero(g_mse[:, :1]) > 0


def test_the_importance_sampler_takes_weighted_losses() -> None:
    diffusion = impl.create_gaussian_diffusion(
        steps=20, learn_sigma=True, noise_schedule="cosine", predict_v=True, loss_weighting="min_snr"
    )
    sampler = impl.create_named_schedule_sampler("loss-second-moment", diffusion)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand((20, 1, 2, 2), generator=gen) * 2 - 1
    model = lambda x, tm, **k: torch.cat([torch.zeros_like(x), torch.zeros_like(x)], 1)  # noqa: E731
    for _ in range(200):  # uniform draws until every t holds its 10 losses
        if sampler._warmed_up():  # type: ignore[attr-defined]
            break
        t, weights = sampler.sample(20, "cpu")
        losses = diffusion.training_losses(model, x0, t, generator=gen)
        sampler.update_with_local_losses(t, losses["loss"].detach())
        assert torch.isfinite((losses["loss"] * weights).mean())
    assert sampler._warmed_up()  # type: ignore[attr-defined]
    p = sampler.weights()
    assert np.isfinite(p).all() and not np.allclose(p, 1 / 20)  # the weighted losses shaped the distribution


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"predict_v": True, "predict_xstart": True}, "predict_v and predict_xstart are exclusive"),
        ({"loss_weighting": "snr"}, "loss_weighting must be one of none, min_snr"),
        ({"loss_weighting": "min_snr", "min_snr_gamma": 0.0}, "min_snr_gamma must be a finite number > 0"),
        ({"vlb_weight": -1.0, "learn_sigma": True}, "vlb_weight must be a finite number >= 0"),
        ({"vlb_weight": 1e-3}, "vlb_weight weighs the VLB term of L_hybrid: it needs a learned variance"),
        ({"use_kl": True, "loss_weighting": "min_snr"}, "loss_weighting 'min_snr' weighs the MSE term"),
    ],
)
def test_bad_objective_options_name_the_option(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        impl.create_gaussian_diffusion(steps=10, noise_schedule="cosine", **kwargs)
