"""Timestep respacing [S27] and the respaced process `SpacedDiffusion` [S28]."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from impl.diffusion.gaussian_diffusion import GaussianDiffusion
from impl.diffusion.schedule import diffusion_tables

__all__ = ["SpacedDiffusion", "respaced_betas", "space_timesteps"]


def _ddim_stride_steps(num_timesteps: int, count: int) -> set[int]:
    # Strides beyond T all give one step, so trying 1..T finds the smallest one if any exists.
    for stride in range(1, num_timesteps + 1):
        if len(range(0, num_timesteps, stride)) == count:
            return set(range(0, num_timesteps, stride))
    raise ValueError(
        f"section_counts='ddim{count}': no integer stride gives exactly {count} of {num_timesteps} steps"
    )


def _parse_counts(section_counts: str | Sequence[int]) -> list[int]:
    if isinstance(section_counts, str):
        try:
            return [int(part) for part in section_counts.split(",")]
        except ValueError:
            raise ValueError(
                f"section_counts must be 'ddimN' or comma-separated integers, got {section_counts!r}"
            ) from None
    return [int(count) for count in section_counts]


def space_timesteps(num_timesteps: int, section_counts: str | Sequence[int]) -> set[int]:
    """The kept steps of a respacing spec: "ddimN" (an integer stride) or per-section counts [S27]."""
    if isinstance(section_counts, str) and section_counts.startswith("ddim"):
        try:
            count = int(section_counts[len("ddim") :])
        except ValueError:
            raise ValueError(
                f"section_counts must be 'ddimN' with an integer N, got {section_counts!r}"
            ) from None
        return _ddim_stride_steps(num_timesteps, count)
    counts = _parse_counts(section_counts)
    if not counts or any(count < 0 for count in counts):
        raise ValueError(f"section_counts must be non-negative counts, got {section_counts!r}")
    base, extra = divmod(num_timesteps, len(counts))
    kept: list[int] = []
    start = 0
    for index, count in enumerate(counts):
        size = base + (1 if index < extra else 0)
        if count > size:
            raise ValueError(f"section_counts: cannot take {count} steps from a section of {size} steps")
        stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
        position = 0.0
        for _ in range(count):
            kept.append(start + round(position))
            position += stride
        start += size
    if not kept:
        raise ValueError(f"section_counts={section_counts!r} keeps no timesteps at all")
    return set(kept)


def respaced_betas(
    alphas_cumprod: NDArray[np.float64], use_timesteps: Iterable[int]
) -> tuple[NDArray[np.float64], list[int]]:
    """β'_i = 1 − ᾱ_{S_i}/ᾱ_{S_{i−1}} over the sorted kept steps S (ᾱ_{S_{−1}} = 1) [S28]; also S itself."""
    kept = sorted({int(step) for step in use_timesteps})
    size = alphas_cumprod.shape[0]
    if not kept or kept[0] < 0 or kept[-1] >= size:
        raise ValueError(f"use_timesteps must be a non-empty set of steps in [0, {size}), got {kept[:8]}...")
    selected = alphas_cumprod[kept]
    previous = np.append(1.0, selected[:-1])
    return 1.0 - selected / previous, kept


class SpacedDiffusion(GaussianDiffusion):
    """A diffusion over a subset `use_timesteps` of a base process's steps [S28].

    The network is still called with the base process's timesteps (rescaled by 1000/T_original when
    `rescale_timesteps`).  `timestep_map[i]` is the original step of respaced step i.
    """

    def __init__(self, use_timesteps: Iterable[int], **kwargs: Any) -> None:
        base_betas = np.asarray(kwargs["betas"], dtype=np.float64)
        base = diffusion_tables(base_betas)
        self.use_timesteps = {int(step) for step in use_timesteps}
        self.original_num_steps = int(base_betas.shape[0])
        new_betas, kept = respaced_betas(base.alphas_cumprod, self.use_timesteps)
        self.timestep_map = kept
        self._map_cache: dict[torch.device, torch.Tensor] = {}
        kwargs["betas"] = new_betas
        super().__init__(**kwargs)

    def _timestep_map_on(self, device: torch.device) -> torch.Tensor:
        table = self._map_cache.get(device)
        if table is None:
            table = torch.tensor(self.timestep_map, dtype=torch.long, device=device)
            self._map_cache[device] = table
        return table

    def prepare_device_caches(self, x: torch.Tensor) -> None:
        """The base tables and the timestep map on x's device (see `GaussianDiffusion`)."""
        super().prepare_device_caches(x)
        self._timestep_map_on(x.device)

    def _scale_timesteps(self, t: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Identity, as in the original: mapping and rescaling happen in `_model_timesteps`."""
        return t

    def _model_timesteps(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """timestep_map[t], times 1000/T_original as a float when `rescale_timesteps` [S28]."""
        original = self._timestep_map_on(t.device).index_select(0, t.reshape(-1))
        if self.rescale_timesteps:
            return original.to(dtype) * (1000.0 / self.original_num_steps)
        return original
