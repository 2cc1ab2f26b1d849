"""Shared marshalling for catalogue entries: build the impl process and the reference tables for a drawn
`ProcessSpec`, move arrays between NumPy and torch, and perturb reference tables for the sensitivity."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

import impl
from properties.compare import Perturb, identity
from properties.strategies import ProcessSpec, StepCase, case_arrays
from reference.process import q_sample
from reference.respacing import model_timesteps, respaced_betas
from reference.schedule import DiffusionTables, diffusion_tables, get_named_beta_schedule

FloatArray = NDArray[np.float64]
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def impl_diffusion(spec: ProcessSpec) -> impl.GaussianDiffusion:
    """The impl process of `spec` (cached: tables are built once per spec and device)."""
    return _impl_diffusion(spec)


@lru_cache(maxsize=256)
def _impl_diffusion(spec: ProcessSpec) -> impl.GaussianDiffusion:
    betas = impl.get_named_beta_schedule(spec.schedule, spec.base_steps)
    kwargs: dict[str, Any] = {
        "betas": betas,
        "model_mean_type": impl.ModelMeanType[spec.mean_type],
        "model_var_type": impl.ModelVarType[spec.var_type],
        "loss_type": impl.LossType[spec.loss_type],
        "rescale_timesteps": spec.rescale_timesteps,
        "loss_weighting": spec.loss_weighting,
        "min_snr_gamma": spec.min_snr_gamma,
        "vlb_weight": spec.vlb_weight,
    }
    if spec.kept is None:
        return impl.GaussianDiffusion(**kwargs)
    return impl.SpacedDiffusion(use_timesteps=set(spec.kept), **kwargs)


@lru_cache(maxsize=256)
def reference_process(
    schedule: str, base_steps: int, kept: tuple[int, ...] | None
) -> tuple[DiffusionTables, NDArray[np.int64]]:
    """(reference DiffusionTables, timestep_map) of a plain or respaced process."""
    betas = get_named_beta_schedule(schedule, base_steps)
    if kept is None:
        return diffusion_tables(betas), np.arange(base_steps, dtype=np.int64)
    base = diffusion_tables(betas)
    new_betas, timestep_map = respaced_betas(base.alphas_cumprod, set(kept))
    return diffusion_tables(new_betas), np.asarray(timestep_map, dtype=np.int64)


def reference_tables(spec: ProcessSpec, perturb: Perturb = identity) -> DiffusionTables:
    """The reference tables of `spec`, every entry passed through `perturb`."""
    tab, _ = reference_process(spec.schedule, spec.base_steps, spec.kept)
    if perturb is identity:
        return tab
    changes = {f.name: perturb(getattr(tab, f.name), f.name) for f in dataclasses.fields(tab)}
    return dataclasses.replace(tab, **changes)


def reference_model_timesteps(spec: ProcessSpec, t: NDArray[np.int64]) -> FloatArray:
    """What the reference says the network is called with at steps t."""
    _, timestep_map = reference_process(spec.schedule, spec.base_steps, spec.kept)
    result = model_timesteps(t, timestep_map, spec.base_steps, spec.rescale_timesteps)
    return np.asarray(result, dtype=np.float64)


def rounded(array: FloatArray, dtype_name: str) -> FloatArray:
    """The float64 values the impl actually receives: rounded to float32 in the float32 tier."""
    if dtype_name == "float32":
        return np.asarray(array, dtype=np.float32).astype(np.float64)
    return np.asarray(array, dtype=np.float64)


def to_torch(array: FloatArray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A float array as a tensor of `dtype` on `device`."""
    return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)


def to_numpy(tensor: torch.Tensor) -> FloatArray:
    """A tensor as float64 NumPy (for comparison)."""
    return np.asarray(tensor.detach().to("cpu", torch.float64).numpy(), dtype=np.float64)


def t_arrays(case: StepCase, device: torch.device) -> tuple[torch.Tensor, NDArray[np.int64]]:
    """The case's timesteps as an int64 tensor on `device` and as NumPy."""
    t_np = np.asarray(case.t, dtype=np.int64)
    return torch.as_tensor(t_np, device=device), t_np


@lru_cache(maxsize=4096)
def x_t_float64(case: StepCase) -> FloatArray:
    """x_t = q_sample(x_start, t, noise) by the reference in float64 (an input of the reverse steps)."""
    arrays = case_arrays(case)
    tab = reference_tables(case.process)
    x_t = q_sample(tab, arrays.x_start, np.asarray(case.t, dtype=np.int64), arrays.noise)
    return np.asarray(x_t, dtype=np.float64)


class RecordingModel:
    """A stand-in network returning a fixed output and recording the timesteps it is called with."""

    def __init__(self, output: torch.Tensor) -> None:
        self.output = output
        self.timesteps: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.timesteps.append(t)
        return self.output


class RecordingCondFn:
    """A stand-in guidance gradient: a fixed tensor; records the timesteps it is called with."""

    def __init__(self, grad: torch.Tensor) -> None:
        self.grad = grad
        self.timesteps: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.timesteps.append(t)
        return self.grad


def denoised_fn_numpy(x: FloatArray) -> FloatArray:
    """The test `denoised_fn`: an elementwise shrink, written once for NumPy ..."""
    return 0.9 * x + 0.05


def denoised_fn_torch(x: torch.Tensor) -> torch.Tensor:
    """... and once for torch (the same formula)."""
    return 0.9 * x + 0.05


def toy_model_numpy(x: FloatArray, learned: bool, var_type: str) -> FloatArray:
    """An elementwise network used where the output must depend on x_t (the bound loop)."""
    mean = 0.8 * np.tanh(x) + 0.1 * x
    if not learned:
        return np.asarray(mean, dtype=np.float64)
    var = np.tanh(0.5 * x) if var_type == "LEARNED_RANGE" else np.tanh(x) - 4.0
    return np.concatenate([mean, var], axis=1)


def toy_model_torch(x: torch.Tensor, learned: bool, var_type: str) -> torch.Tensor:
    """`toy_model_numpy` in torch."""
    mean = 0.8 * torch.tanh(x) + 0.1 * x
    if not learned:
        return mean
    var = torch.tanh(0.5 * x) if var_type == "LEARNED_RANGE" else torch.tanh(x) - 4.0
    return torch.cat([mean, var], dim=1)
