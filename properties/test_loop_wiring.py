"""Every argument of a public sampling loop reaches every step, and the loops' defaults are the original's.

A loop is defined as the chain of its single steps (`p_sample` [S29] / `ddim_sample` [S30], each held to the
reference by the catalogue): from the same x_T, with the same arguments and the same generator stream, the
loop and a hand-written chain of steps run the same float64 operations in the same order, so they must agree
exactly.  Each argument is given a value that changes the result (a model that needs its `model_kwargs`, a
`denoised_fn` that moves x̂_0, a guidance gradient, η ≠ 0, x̂_0 outside [−1, 1] so that clipping matters),
so a loop that drops or replaces one of them fails.  Found by mutation testing (docs/testing.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import impl
from properties import strategies as sp
from properties.marshal import denoised_fn_torch, impl_diffusion, toy_model_torch

LOOP_CASES = sp.step_cases(max_steps=8)
LABEL_SCALE = 0.25  # how strongly the toy model's output depends on its `y` keyword


def _model(spec: sp.ProcessSpec) -> Callable[..., torch.Tensor]:
    """The toy network, shifted by a keyword argument it requires (so dropped `model_kwargs` fail)."""

    def model(x: torch.Tensor, t: torch.Tensor, *, y: torch.Tensor) -> torch.Tensor:
        return toy_model_torch(
            x + LABEL_SCALE * y.reshape(-1, *([1] * (x.ndim - 1))), spec.learned_variance, spec.var_type
        )

    return model


def _cond_fn(x: torch.Tensor, t: torch.Tensor, *, y: torch.Tensor) -> torch.Tensor:
    """A guidance gradient that depends on x, t and the keyword argument."""
    return 0.3 * torch.tanh(x) + 0.01 * t.reshape(-1, *([1] * (x.ndim - 1))) * y.reshape(
        -1, *([1] * (x.ndim - 1))
    )


def _arguments(case: sp.StepCase, clip_denoised: bool) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(case.seed)
    labels = torch.randn(case.shape[0], generator=generator, dtype=torch.float64)
    return {
        "clip_denoised": clip_denoised,
        "denoised_fn": denoised_fn_torch,
        "cond_fn": _cond_fn,
        "model_kwargs": {"y": labels},
    }


def _x_T(case: sp.StepCase) -> torch.Tensor:
    # Scaled up so that x̂_0 leaves [−1, 1] and clip_denoised changes the result.
    generator = torch.Generator().manual_seed(case.seed + 1)
    return 3.0 * torch.randn(case.shape, generator=generator, dtype=torch.float64)


def _chain_of_steps(
    diffusion: impl.GaussianDiffusion,
    model: Callable[..., torch.Tensor],
    x: torch.Tensor,
    ddim: bool,
    eta: float,
    seed: int,
    arguments: dict[str, Any],
) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    outputs = []
    for i in range(diffusion.num_timesteps - 1, -1, -1):
        t = torch.full((x.shape[0],), i, dtype=torch.long)
        with torch.no_grad():
            if ddim:
                out = diffusion.ddim_sample(model, x, t, eta=eta, generator=generator, **arguments)
            else:
                out = diffusion.p_sample(model, x, t, generator=generator, **arguments)
        outputs.append(out)
        x = out["sample"]
    return outputs


@pytest.mark.parametrize("ddim", [False, True], ids=["ancestral", "ddim"])
@pytest.mark.parametrize("clip_denoised", [False, True], ids=["unclipped", "clipped"])
@given(case=LOOP_CASES, eta=st.sampled_from((0.5, 1.0)))
@settings(max_examples=8)
def test_loops_equal_the_chain_of_their_steps(
    case: sp.StepCase, eta: float, ddim: bool, clip_denoised: bool
) -> None:
    """`*_sample_loop` returns, and `*_sample_loop_progressive` yields, exactly the chained steps' results."""
    diffusion = impl_diffusion(case.process)
    model = _model(case.process)
    arguments = _arguments(case, clip_denoised)
    x_T = _x_T(case)
    expected = _chain_of_steps(diffusion, model, x_T, ddim, eta, case.seed + 2, arguments)
    extra: dict[str, Any] = {"eta": eta} if ddim else {}
    progressive = diffusion.ddim_sample_loop_progressive if ddim else diffusion.p_sample_loop_progressive
    final = diffusion.ddim_sample_loop if ddim else diffusion.p_sample_loop
    steps = list(
        progressive(
            model,
            case.shape,
            noise=x_T,
            generator=torch.Generator().manual_seed(case.seed + 2),
            **extra,
            **arguments,
        )
    )
    assert len(steps) == len(expected)
    for index, (got, want) in enumerate(zip(steps, expected, strict=True)):
        for key in ("sample", "pred_xstart"):
            assert torch.equal(got[key], want[key]), f"step {index}: {key} differs from the chained step"
    sample = final(
        model,
        case.shape,
        noise=x_T,
        generator=torch.Generator().manual_seed(case.seed + 2),
        **extra,
        **arguments,
    )
    assert torch.equal(sample, expected[-1]["sample"])


@given(case=LOOP_CASES)
@settings(max_examples=8)
def test_loop_defaults_are_the_originals(case: sp.StepCase) -> None:
    """Omitted arguments mean clip_denoised=True, no denoised_fn/cond_fn/model_kwargs, and η = 0 for DDIM."""
    diffusion = impl_diffusion(case.process)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return toy_model_torch(x, case.process.learned_variance, case.process.var_type)

    x_T = _x_T(case)
    explicit: dict[str, Any] = {
        "clip_denoised": True,
        "denoised_fn": None,
        "cond_fn": None,
        "model_kwargs": None,
    }
    loops: tuple[tuple[Callable[..., torch.Tensor], dict[str, Any]], ...] = (
        (diffusion.p_sample_loop, {}),
        (diffusion.ddim_sample_loop, {"eta": 0.0}),
    )
    for loop, extra in loops:
        seeded = torch.Generator().manual_seed(case.seed)
        implicit = loop(model, case.shape, noise=x_T, generator=seeded)
        spelled = loop(
            model,
            case.shape,
            noise=x_T,
            generator=torch.Generator().manual_seed(case.seed),
            **explicit,
            **extra,
        )
        assert torch.equal(implicit, spelled), f"{loop.__name__}: defaults differ from the original's"


@given(case=sp.step_cases(max_steps=6))
@settings(max_examples=8)
def test_calc_bpd_loop_clips_by_default(case: sp.StepCase) -> None:
    """`calc_bpd_loop(model, x_start)` is `calc_bpd_loop(model, x_start, clip_denoised=True)` [S20]."""
    diffusion = impl_diffusion(case.process)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return toy_model_torch(3.0 * x, case.process.learned_variance, case.process.var_type)

    generator = torch.Generator().manual_seed(case.seed)
    x_start = torch.rand(case.shape, generator=generator, dtype=torch.float64) * 2.0 - 1.0
    noise = torch.randn((diffusion.num_timesteps, *case.shape), generator=generator, dtype=torch.float64)
    implicit = diffusion.calc_bpd_loop(model, x_start, noise=noise)
    clipped = diffusion.calc_bpd_loop(model, x_start, clip_denoised=True, noise=noise)
    for key, value in clipped.items():
        assert torch.equal(implicit[key], value), f"{key}: the default is not clip_denoised=True"
