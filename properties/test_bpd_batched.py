"""`calc_bpd_loop(..., timestep_batch=k)`: k timesteps per network call give the numbers, the column order
and the noise draws of one timestep per call [S20]."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from properties import strategies as sp
from properties.marshal import impl_diffusion, toy_model_torch

LOOP_CASES = sp.step_cases(max_steps=10)
KEYS = ("total_bpd", "prior_bpd", "vb", "xstart_mse", "mse")


def _conditioned_model(
    spec: sp.ProcessSpec,
) -> tuple[Callable[..., torch.Tensor], list[tuple[int, torch.Tensor]]]:
    """A per-sample toy network that also uses a per-sample label `y` and a 0-d `scale`; records calls."""
    calls: list[tuple[int, torch.Tensor]] = []

    def model(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        calls.append((x.shape[0], t))
        shifted = x + scale * y.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return toy_model_torch(shifted, spec.learned_variance, spec.var_type)

    return model, calls


@given(case=LOOP_CASES, timestep_batch=st.integers(2, 12), double=st.booleans())
@settings(max_examples=10)
def test_timestep_batch_equals_one_timestep_per_call(
    case: sp.StepCase, timestep_batch: int, double: bool
) -> None:
    """Every output of timestep_batch=k equals timestep_batch=1 bit for bit (float64 and float32) for a
    per-sample network: the stacked batch runs the same element-wise kernels and per-row means, so no
    rounding differs.  The network is called ⌈T/k⌉ times with k·B rows (fewer in the last call), at the
    timesteps T−1, …, 0 in order, with the label repeated for every copy."""
    spec = case.process
    dtype = torch.float64 if double else torch.float32
    diffusion = impl_diffusion(spec)
    x_start = torch.tensor(sp.case_arrays(case).x_start).to(dtype)
    noise = torch.randn(
        (spec.num_timesteps, *case.shape), generator=torch.Generator().manual_seed(case.seed), dtype=dtype
    )
    kwargs = {"y": torch.arange(case.shape[0]), "scale": torch.tensor(0.25, dtype=dtype)}
    plain_model, plain_calls = _conditioned_model(spec)
    batched_model, batched_calls = _conditioned_model(spec)
    plain = diffusion.calc_bpd_loop(plain_model, x_start, case.clip_denoised, kwargs, noise)
    batched = diffusion.calc_bpd_loop(
        batched_model, x_start, case.clip_denoised, kwargs, noise, timestep_batch=timestep_batch
    )
    for key in KEYS:
        assert batched[key].dtype == plain[key].dtype and batched[key].shape == plain[key].shape, key
        assert torch.equal(batched[key], plain[key]), (key, (batched[key] - plain[key]).abs().max())
    assert len(batched_calls) == math.ceil(spec.num_timesteps / timestep_batch)
    assert torch.equal(torch.cat([t for _, t in batched_calls]), torch.cat([t for _, t in plain_calls]))
    rows = [size for size, _ in batched_calls]
    assert all(size == timestep_batch * case.shape[0] for size in rows[:-1])


@given(case=LOOP_CASES, timestep_batch=st.integers(2, 12))
@settings(max_examples=10)
def test_generator_draws_do_not_depend_on_timestep_batch(case: sp.StepCase, timestep_batch: int) -> None:
    """Without `noise`, ε_t is drawn from the generator one timestep at a time in the order T−1, …, 0:
    the same seed gives the same result for every k, and that result is the one for noise drawn
    explicitly in that order."""
    spec = case.process
    diffusion = impl_diffusion(case.process)
    x_start = torch.tensor(sp.case_arrays(case).x_start)
    kwargs = {"y": torch.zeros(case.shape[0]), "scale": torch.tensor(0.0, dtype=torch.float64)}
    model, _ = _conditioned_model(spec)
    twin = torch.Generator().manual_seed(case.seed)
    noise = torch.empty((spec.num_timesteps, *case.shape), dtype=torch.float64)
    for i in reversed(range(spec.num_timesteps)):
        noise[i] = torch.randn(case.shape, generator=twin, dtype=torch.float64)
    explicit = diffusion.calc_bpd_loop(model, x_start, case.clip_denoised, kwargs, noise)
    for k in (1, timestep_batch):
        drawn = diffusion.calc_bpd_loop(
            model,
            x_start,
            case.clip_denoised,
            kwargs,
            generator=torch.Generator().manual_seed(case.seed),
            timestep_batch=k,
        )
        for key in KEYS:
            assert torch.equal(drawn[key], explicit[key]), (k, key)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2", None])
def test_timestep_batch_must_be_a_positive_int(bad: object) -> None:
    """A non-positive, non-int (or bool) timestep_batch is a ValueError naming the argument."""
    diffusion = impl_diffusion(sp.ProcessSpec("cosine", 4, None, "EPSILON", "FIXED_SMALL", "MSE", False))
    with pytest.raises(ValueError, match="timestep_batch"):
        diffusion.calc_bpd_loop(
            lambda x, t: x,
            torch.zeros(1, 1, 1, 1),
            timestep_batch=bad,  # type: ignore[arg-type]
        )


def test_batched_model_kwargs_must_be_per_sample() -> None:
    """With k > 1 a tensor keyword whose leading size is not the batch cannot be repeated: ValueError."""
    diffusion = impl_diffusion(sp.ProcessSpec("cosine", 4, None, "EPSILON", "FIXED_SMALL", "MSE", False))
    with pytest.raises(ValueError, match="model_kwargs"):
        diffusion.calc_bpd_loop(
            lambda x, t, y: x,
            torch.zeros(2, 1, 1, 1),
            model_kwargs={"y": torch.zeros(3)},
            timestep_batch=2,
        )
