"""Noise schedules [S1]–[S3] (float64 NumPy, built once) and the derived per-timestep tables [S4]–[S8].

The tables are computed on the host in float64 once per process; `TableCache` keeps one copy per
(device, compute dtype) so that per-step code only gathers from tensors already on the input's device.
The field list is written once, in `DiffusionTables`, generic over the array type: `HostTables` (float64
NumPy) and `TorchTables` (tensors of one dtype on one device) are its instances, and `map_tables` converts
one into the other field by field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Generic, Protocol, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = [
    "TABLE_NAMES",
    "DiffusionTables",
    "HostTables",
    "TableCache",
    "TorchTables",
    "betas_for_alpha_bar",
    "compute_dtype",
    "cosine_alpha_bar",
    "diffusion_tables",
    "get_named_beta_schedule",
    "linear_beta_schedule",
    "map_tables",
    "tables_on",
]

Float64Array = NDArray[np.float64]

SCHEDULE_NAMES = ("linear", "cosine")

# The last linear beta is 20/T; at T = 20 it is 1 (ᾱ_{T-1} = 0: L_vb and samples NaN), so T >= 21 [S1].
LINEAR_MIN_T = 21


def linear_beta_schedule(num_diffusion_timesteps: int) -> Float64Array:
    """β = linspace(s·1e-4, s·0.02, T) with s = 1000/T [S1]; T <= 20 gives β_T >= 1 and is rejected."""
    if num_diffusion_timesteps < LINEAR_MIN_T:
        raise ValueError(
            f"num_diffusion_timesteps={num_diffusion_timesteps}: the linear schedule needs T >= "
            f"{LINEAR_MIN_T} (its last beta is 20/T, which must be below 1); use the cosine schedule "
            "for fewer steps"
        )
    scale = 1000.0 / num_diffusion_timesteps
    return np.linspace(scale * 0.0001, scale * 0.02, num_diffusion_timesteps, dtype=np.float64)


def cosine_alpha_bar(tau: float) -> float:
    """ᾱ(τ) = cos(((τ + s)/(1 + s))·π/2)², s = 0.008 [S3]."""
    offset = 0.008
    return math.cos((tau + offset) / (1.0 + offset) * math.pi / 2.0) ** 2


def betas_for_alpha_bar(
    num_diffusion_timesteps: int, alpha_bar: Callable[[float], float], max_beta: float = 0.999
) -> Float64Array:
    """β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), max_beta) for a continuous ᾱ(τ) on [0, 1] [S2]."""
    if num_diffusion_timesteps < 1:
        raise ValueError(f"num_diffusion_timesteps must be >= 1, got {num_diffusion_timesteps}")
    steps = num_diffusion_timesteps
    betas = [min(1.0 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), max_beta) for i in range(steps)]
    return np.asarray(betas, dtype=np.float64)


def get_named_beta_schedule(schedule_name: str, num_diffusion_timesteps: int) -> Float64Array:
    """The betas of a named schedule: "linear" [S1] or "cosine" [S2]+[S3]."""
    if schedule_name == "linear":
        return linear_beta_schedule(num_diffusion_timesteps)
    if schedule_name == "cosine":
        return betas_for_alpha_bar(num_diffusion_timesteps, cosine_alpha_bar)
    raise ValueError(f"schedule_name must be one of {SCHEDULE_NAMES}, got {schedule_name!r}")


class _Array(Protocol):
    """What the tables need of an array type: a shape (NumPy arrays and torch tensors both have one)."""

    @property
    def shape(self) -> tuple[int, ...]: ...


ArrayT = TypeVar("ArrayT", bound=_Array)
OtherArrayT = TypeVar("OtherArrayT", bound=_Array)


@dataclass(frozen=True)
class DiffusionTables(Generic[ArrayT]):
    """The per-timestep tables of one process ([S4], [S5], [S7], [S8], [S9]), each of shape (T,)."""

    betas: ArrayT
    alphas: ArrayT
    alphas_cumprod: ArrayT
    alphas_cumprod_prev: ArrayT
    alphas_cumprod_next: ArrayT
    sqrt_alphas_cumprod: ArrayT
    sqrt_one_minus_alphas_cumprod: ArrayT
    log_one_minus_alphas_cumprod: ArrayT
    sqrt_recip_alphas_cumprod: ArrayT
    sqrt_recipm1_alphas_cumprod: ArrayT
    posterior_variance: ArrayT
    posterior_log_variance_clipped: ArrayT
    posterior_mean_coef1: ArrayT
    posterior_mean_coef2: ArrayT
    log_betas: ArrayT
    fixed_large_log_variance: ArrayT
    fixed_large_variance: ArrayT

    @property
    def num_timesteps(self) -> int:
        """T, the number of steps of the process."""
        return int(self.betas.shape[0])


HostTables = DiffusionTables[Float64Array]
"""The tables as float64 NumPy arrays on the host (built once by `diffusion_tables`)."""

TorchTables = DiffusionTables[torch.Tensor]
"""The tables as tensors of one compute dtype on one device (made by `TableCache`)."""

TABLE_NAMES: tuple[str, ...] = tuple(field.name for field in fields(DiffusionTables))
"""The names of the tables, in field order."""


def map_tables(
    tables: DiffusionTables[ArrayT], convert: Callable[[ArrayT], OtherArrayT]
) -> DiffusionTables[OtherArrayT]:
    """The tables with `convert` applied to each one."""
    return DiffusionTables(**{name: convert(getattr(tables, name)) for name in TABLE_NAMES})


def _validate_betas(betas: Float64Array) -> Float64Array:
    array = np.asarray(betas, dtype=np.float64)
    if array.ndim != 1 or array.shape[0] < 1:
        raise ValueError(f"betas must be a non-empty 1-D array, got shape {array.shape}")
    if not (np.all(array > 0.0) and np.all(array <= 1.0)):
        raise ValueError("betas must lie in (0, 1]")
    return array


def diffusion_tables(betas: Float64Array) -> HostTables:
    """All derived tables of [S4]–[S12] from β, in float64.

    The clipped posterior log-variance replaces the t = 0 entry (β̃_0 = 0) by β̃_1 [S8]; with T = 1 there is
    no β̃_1 and β_0 is used instead (the only positive variance the process has).
    """
    b = _validate_betas(betas)
    alphas = 1.0 - b
    abar: Float64Array = np.cumprod(alphas, dtype=np.float64)
    abar_prev = np.append(1.0, abar[:-1])
    abar_next = np.append(abar[1:], 0.0)
    post_var = b * (1.0 - abar_prev) / (1.0 - abar)
    first_positive = post_var[1] if b.shape[0] > 1 else b[0]
    post_var_clipped = np.append(first_positive, post_var[1:])
    large_var = np.append(first_positive, b[1:])
    # β = 1 (the linear schedule at T = 20) makes ᾱ_{T−1} = 0 and its reciprocal tables infinite.
    with np.errstate(divide="ignore"):
        log_one_minus_abar = np.log(1.0 - abar)
        sqrt_recip_abar = np.sqrt(1.0 / abar)
        sqrt_recipm1_abar = np.sqrt(1.0 / abar - 1.0)
    return DiffusionTables(
        betas=b,
        alphas=alphas,
        alphas_cumprod=abar,
        alphas_cumprod_prev=abar_prev,
        alphas_cumprod_next=abar_next,
        sqrt_alphas_cumprod=np.sqrt(abar),
        sqrt_one_minus_alphas_cumprod=np.sqrt(1.0 - abar),
        log_one_minus_alphas_cumprod=log_one_minus_abar,
        sqrt_recip_alphas_cumprod=sqrt_recip_abar,
        sqrt_recipm1_alphas_cumprod=sqrt_recipm1_abar,
        posterior_variance=post_var,
        posterior_log_variance_clipped=np.log(post_var_clipped),
        posterior_mean_coef1=b * np.sqrt(abar_prev) / (1.0 - abar),
        posterior_mean_coef2=(1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar),
        log_betas=np.log(b),
        fixed_large_log_variance=np.log(large_var),
        fixed_large_variance=large_var,
    )


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 inputs compute in float64; every other dtype (float32, bf16, fp16) computes in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def tables_on(host: HostTables, device: torch.device, dtype: torch.dtype) -> TorchTables:
    """The host tables as tensors on `device` in `dtype`, each built in float64 and rounded once."""

    def to_tensor(array: Float64Array) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device=device, dtype=dtype)

    return map_tables(host, to_tensor)


class TableCache:
    """Lazily materialised `TorchTables`, one per (device, compute dtype)."""

    def __init__(self, host: HostTables) -> None:
        self.host = host
        self._cache: dict[tuple[torch.device, torch.dtype], TorchTables] = {}

    def get(self, device: torch.device, dtype: torch.dtype) -> TorchTables:
        """The tables on `device` in the compute dtype for inputs of `dtype` (see `compute_dtype`)."""
        key = (device, compute_dtype(dtype))
        tables = self._cache.get(key)
        if tables is None:
            tables = tables_on(self.host, device, key[1])
            self._cache[key] = tables
        return tables
