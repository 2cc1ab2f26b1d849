"""v-prediction, min-SNR-γ weighting and the VLB weight λ in impl [S40]–[S44]: impl ≡ reference in both dtype
tiers, the λ identities bit for bit, and the options through every consumer (ancestral and DDIM loops,
calc_bpd_loop, L_hybrid's stop-gradient, the importance sampler)."""

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

# Budgets (impl vs reference on the same inputs).  float64: the same two-product formulas evaluated in the
# same precision, reassociated: a few ulps (2.2e-16) of values ≲ 10 → 1e-13.  float32: the inputs and the
# float64-built tables are rounded once to float32 (relative 6e-8 each) and each formula has two products and
# a sum: |error| ≤ ~4·6e-8·(|a x| + |b y|) ≲ 3e-6 for |x|, |y| ≲ 5; SNR = (√ᾱ/√(1 − ᾱ))² adds 3 roundings
# (relative 2e-7), and the min-SNR weight is a ratio of such values (relative ≤ 5e-7).
BUDGET = {
    torch.float64: {"affine": (1e-13, 1e-13), "snr": (1e-13, 0.0), "loss": (1e-11, 1e-12)},
    torch.float32: {"affine": (1e-5, 3e-6), "snr": (1e-6, 0.0), "loss": (1e-4, 1e-5)},
}
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


def _close(actual: torch.Tensor, expected: np.ndarray, rtol: float, atol: float, what: str) -> None:
    got = actual.detach().to(torch.float64).cpu().numpy()
    err = np.abs(got - expected) - (atol + rtol * np.abs(expected))
    worst = np.unravel_index(np.argmax(err), err.shape) if err.size else ()
    assert err.size == 0 or err.max() <= 0, (
        f"{what}: worst element {worst}: impl {got[worst]!r} vs reference {expected[worst]!r} "
        f"(rtol {rtol}, atol {atol})"
    )


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
    x_t = rng.standard_normal(x0.shape) * 2
    tab = diffusion.tables_for(torch.zeros((), dtype=dtype))
    tt = torch.from_numpy(t)
    rtol, atol = BUDGET[dtype]["affine"]
    as_t = lambda a: torch.from_numpy(a).to(dtype)  # noqa: E731
    _close(
        impl_proc.velocity(tab, as_t(x0), tt, as_t(eps)), ref_proc.velocity(host, x0, t, eps), rtol, atol, "v"
    )
    _close(
        impl_proc.predict_xstart_from_v(tab, as_t(x_t), tt, as_t(eps)),
        ref_proc.predict_xstart_from_v(host, x_t, t, eps),
        rtol,
        atol,
        "x0 from v",
    )
    _close(
        impl_proc.predict_eps_from_v(tab, as_t(x_t), tt, as_t(eps)),
        ref_proc.predict_eps_from_v(host, x_t, t, eps),
        rtol,
        atol,
        "eps from v",
    )
    rtol, atol = BUDGET[dtype]["snr"]
    snr_ref = ref_obj.signal_to_noise_ratio(host, t)
    _close(impl_obj.signal_to_noise_ratio(tab, tt), snr_ref, rtol, atol, "SNR")
    for mean_type in MEAN_TYPES:
        got = impl_obj.min_snr_weight(torch.from_numpy(snr_ref).to(dtype), 5.0, impl.ModelMeanType[mean_type])
        _close(got, ref_obj.min_snr_weight(snr_ref, 5.0, mean_type), 4 * rtol, atol, f"weight {mean_type}")


@settings(max_examples=40, deadline=None)
@given(
    process=processes,
    mean_type=st.sampled_from(MEAN_TYPES),
    var_type=st.sampled_from(VAR_TYPES),
    weighting=st.sampled_from(["none", "min_snr"]),
    gamma=st.sampled_from([0.5, 5.0]),
    vlb_weight=st.sampled_from([None, 0.0, 1e-3, 0.37]),
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from([torch.float64, torch.float32]),
)
def test_training_losses_with_the_options_match_the_reference(
    process: tuple[str, int],
    mean_type: str,
    var_type: str,
    weighting: str,
    gamma: float,
    vlb_weight: float | None,
    seed: int,
    dtype: torch.dtype,
) -> None:
    learned = var_type in ("LEARNED", "LEARNED_RANGE")
    if not learned:
        vlb_weight = None
    host, _ = _tables(*process)
    diffusion = impl.GaussianDiffusion(
        betas=host.betas,
        model_mean_type=impl.ModelMeanType[mean_type],
        model_var_type=impl.ModelVarType[var_type],
        loss_type=impl.LossType.RESCALED_MSE,
        loss_weighting=weighting,
        min_snr_gamma=gamma,
        vlb_weight=vlb_weight,
    )
    rng = np.random.default_rng(seed)
    T = host.num_timesteps
    t = np.array([0, 1, T - 1, *rng.integers(0, T, size=3)])
    x0 = rng.integers(0, 256, size=(6, 2, 2, 2)) / 127.5 - 1.0
    eps = rng.standard_normal(x0.shape)
    out = rng.standard_normal((6, 4 if learned else 2, 2, 2))
    if var_type == "LEARNED_RANGE":
        out[:, 2:] = np.tanh(out[:, 2:])
    expected = ref_obj.training_losses(
        host,
        out,
        x0,
        t,
        eps,
        model_mean_type=mean_type,
        model_var_type=var_type,
        loss_type="RESCALED_MSE",
        loss_weighting=weighting,
        min_snr_gamma=gamma,
        vlb_weight=vlb_weight,
    )
    as_t = lambda a: torch.from_numpy(a).to(dtype)  # noqa: E731
    got = diffusion.training_losses(
        lambda x, tm, **k: as_t(out), as_t(x0), torch.from_numpy(t), noise=as_t(eps)
    )
    rtol, atol = BUDGET[dtype]["loss"]
    assert set(got) == set(expected)
    for key, value in expected.items():
        _close(got[key], value, rtol, atol, key)


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
        model = lambda x, tm, **k: out  # noqa: E731
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
    for loop in ("p_sample_loop", "ddim_sample_loop"):
        a = getattr(by_eps, loop)(
            eps_model, shape, clip_denoised=False, generator=torch.Generator().manual_seed(1), device="cpu"
        )
        b = getattr(by_v, loop)(
            v_model, shape, clip_denoised=False, generator=torch.Generator().manual_seed(1), device="cpu"
        )
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)
    x0 = torch.rand(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    ba = by_eps.calc_bpd_loop(eps_model, x0, clip_denoised=False, generator=torch.Generator().manual_seed(3))
    bb = by_v.calc_bpd_loop(v_model, x0, clip_denoised=False, generator=torch.Generator().manual_seed(3))
    for key in ("total_bpd", "vb", "mse", "xstart_mse"):
        torch.testing.assert_close(bb[key], ba[key], rtol=1e-9, atol=1e-9)


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
    for _ in range(12):
        t, weights = sampler.sample(20, "cpu")
        losses = diffusion.training_losses(model, x0, t, generator=gen)
        sampler.update_with_local_losses(t, losses["loss"].detach())
        assert torch.isfinite((losses["loss"] * weights).mean())
    assert sampler._warmed_up()  # type: ignore[attr-defined]
    assert not np.allclose(sampler.weights(), 1 / 20)  # the weighted losses shaped the distribution


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
