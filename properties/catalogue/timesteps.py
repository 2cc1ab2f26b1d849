"""Catalogue entries of `reference.timesteps`: the loss-history update, the timestep probabilities, and
sampling with its importance weights (float64 on the device)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st
from numpy.typing import NDArray

import impl
from impl.diffusion import timesteps as impl_timesteps
from properties import strategies as sp
from properties.catalogue.entry import FLOAT64_ONLY, Entry, FloatArray, Outputs
from properties.compare import Perturb
from properties.marshal import impl_diffusion, rounded, to_numpy
from reference.timesteps import (
    importance_weights,
    loss_second_moment_probs,
    sample_timesteps,
    uniform_timestep_probs,
    update_loss_history,
)
from testing.tolerances import ReferenceOp

LSM = impl.LossSecondMomentResampler
PROBS = ReferenceOp.TIMESTEP_PROBS


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


SAMPLERS = sampler_cases()


def _process(case: SamplerCase) -> impl.GaussianDiffusion:
    spec = sp.ProcessSpec("cosine", case.num_timesteps, None, "EPSILON", "FIXED_SMALL", "MSE", False)
    return impl_diffusion(spec)


def _history_ref(case: SamplerCase) -> tuple[FloatArray, NDArray[np.int64]]:
    history = np.zeros((case.num_timesteps, case.history_per_term))
    counts = np.zeros(case.num_timesteps, dtype=np.int64)
    for batch in case.batches:
        t = np.asarray([p[0] for p in batch], dtype=np.int64)
        losses = np.asarray([p[1] for p in batch], dtype=np.float64)
        history, counts = update_loss_history(history, counts, t, losses)
    return np.asarray(history), np.asarray(counts)


def _resampler(case: SamplerCase, local: bool, device: torch.device) -> impl.LossSecondMomentResampler:
    sampler = LSM(_process(case), history_per_term=case.history_per_term, uniform_prob=case.uniform_prob)
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
    p = loss_second_moment_probs(perturb(history, "history"), counts, case.uniform_prob)
    return {"p": np.asarray(p)}


def _uniform_weights_impl(case: SamplerCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    weights = impl.UniformSampler(_process(case)).weights()
    return {"p": weights / weights.sum()}


def _uniform_weights_ref(case: SamplerCase, dtype_name: str, perturb: Perturb) -> Outputs:
    return {"p": np.asarray(uniform_timestep_probs(case.num_timesteps))}


def _sample_impl(case: SamplerCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    sampler = _resampler(case, True, device)
    generator = torch.Generator(device=device).manual_seed(case.seed)
    t, weights = sampler.sample(7, device, generator=generator)
    return {"t": to_numpy(t), "weights": to_numpy(weights)}


def _sample_ref(case: SamplerCase, dtype_name: str, perturb: Perturb) -> Outputs:
    history, counts = _history_ref(case)
    p = loss_second_moment_probs(history, counts, case.uniform_prob)
    # ScheduleSampler.sample draws its uniforms as float64 from the generator: the same stream here.
    uniforms = torch.rand(7, generator=torch.Generator().manual_seed(case.seed), dtype=torch.float64).numpy()
    t = np.asarray(sample_timesteps(p, uniforms))
    weights = np.asarray(importance_weights(perturb(np.asarray(p), "p"), t))
    # The API returns the weights as float32 (as the original does): compare with their rounding.
    return {"t": t.astype(np.float64), "weights": rounded(weights, "float32")}


def _probabilities_and_uniforms(case: SamplerCase) -> tuple[FloatArray, FloatArray]:
    rng = np.random.default_rng(case.seed)
    p = rng.dirichlet(np.ones(case.num_timesteps))
    return p, rng.random(9)


def _sample_fn_impl(case: SamplerCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    p, u = _probabilities_and_uniforms(case)
    t = impl_timesteps.sample_timesteps(torch.as_tensor(p, device=device), torch.as_tensor(u, device=device))
    w = impl_timesteps.importance_weights(torch.as_tensor(p, device=device), t)
    return {"t": to_numpy(t), "weights": to_numpy(w)}


def _sample_fn_ref(case: SamplerCase, dtype_name: str, perturb: Perturb) -> Outputs:
    p, u = _probabilities_and_uniforms(case)
    t = np.asarray(sample_timesteps(p, u))
    return {"t": t.astype(np.float64), "weights": np.asarray(importance_weights(perturb(p, "p"), t))}


ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="update_with_all_losses",
        impl=LSM.update_with_all_losses,
        reference=update_loss_history,
        strategy=SAMPLERS,
        call_impl=_history_impl(False),
        call_reference=_history_reference,
        op=ReferenceOp.EXACT,
        covers=(LSM.update_with_all_losses, impl_timesteps.update_loss_history),
        dtypes=FLOAT64_ONLY,
    ),
    Entry(
        name="update_with_local_losses",
        impl=LSM.update_with_local_losses,
        reference=update_loss_history,
        strategy=SAMPLERS,
        call_impl=_history_impl(True),
        call_reference=_history_reference,
        op=ReferenceOp.EXACT,
        covers=(LSM.update_with_local_losses,),
        dtypes=FLOAT64_ONLY,
    ),
    Entry(
        name="LossSecondMomentResampler.weights",
        impl=LSM.weights,
        reference=loss_second_moment_probs,
        strategy=SAMPLERS,
        call_impl=_weights_impl,
        call_reference=_weights_ref,
        op=PROBS,
        covers=(LSM, LSM.weights, LSM.probabilities, impl_timesteps.loss_second_moment_probs),
        dtypes=FLOAT64_ONLY,
    ),
    Entry(
        name="UniformSampler.weights",
        impl=impl.UniformSampler.weights,
        reference=uniform_timestep_probs,
        strategy=SAMPLERS,
        call_impl=_uniform_weights_impl,
        call_reference=_uniform_weights_ref,
        op=PROBS,
        covers=(impl.UniformSampler, impl.UniformSampler.weights, impl.ScheduleSampler.probabilities),
        dtypes=FLOAT64_ONLY,
    ),
    Entry(
        name="ScheduleSampler.sample",
        impl=impl.ScheduleSampler.sample,
        reference=sample_timesteps,
        strategy=SAMPLERS,
        call_impl=_sample_impl,
        call_reference=_sample_ref,
        op=PROBS,
        covers=(impl.ScheduleSampler.sample,),
        dtypes=FLOAT64_ONLY,
        # The uniforms come from the generator's stream, which differs between CPU and CUDA; the sampling
        # math itself (sample_timesteps, importance_weights) is catalogued on every device below.
        devices=("cpu",),
    ),
    Entry(
        name="sample_timesteps",
        impl=impl_timesteps.sample_timesteps,
        reference=sample_timesteps,
        strategy=SAMPLERS,
        call_impl=_sample_fn_impl,
        call_reference=_sample_fn_ref,
        op=PROBS,
        covers=(impl_timesteps.sample_timesteps, impl_timesteps.importance_weights),
        dtypes=FLOAT64_ONLY,
    ),
)
