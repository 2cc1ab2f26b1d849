"""The inputs of the per-step entries on both sides, and the reverse process's mean/variance call.

A `StepCase` (properties.strategies) expands into named float64 arrays.  The impl receives them as
tensors of the tier's dtype; the reference receives the same values rounded as the impl sees them, then
passed through the comparison's perturbation (one named group at a time, see properties.compare).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from properties import strategies as sp
from properties.catalogue.entry import FloatArray, Outputs
from properties.compare import Perturb
from properties.marshal import (
    RecordingModel,
    denoised_fn_numpy,
    denoised_fn_torch,
    impl_diffusion,
    reference_tables,
    rounded,
    t_arrays,
    to_numpy,
    to_torch,
    x_t_float64,
)
from reference.process import p_mean_variance
from reference.schedule import DiffusionTables

STEP_CASES = sp.step_cases()
MV = ("mean", "variance", "log_variance")
PMV = ("mean", "variance", "log_variance", "pred_xstart")
# The arrays of a case, in the order the perturbation visits them.
ARRAY_NAMES = ("x_start", "noise", "step_noise", "model_output", "grad", "x_t")


def _case_float64(case: sp.StepCase) -> dict[str, FloatArray]:
    arrays = sp.case_arrays(case)
    return {
        "x_start": arrays.x_start,
        "noise": arrays.noise,
        "step_noise": arrays.step_noise,
        "model_output": arrays.model_output,
        "grad": arrays.grad,
        "x_t": x_t_float64(case),
    }


def mean_part(array: Any, case: sp.StepCase) -> Any:
    """The first C channels of a model output (its mean part when the variance is learned)."""
    return array[:, : case.shape[1]]


def reference_inputs(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> dict[str, FloatArray]:
    """The reference-side inputs: rounded as the impl sees them, then perturbed; plus ``model_mean``."""
    raw = _case_float64(case)
    values = {name: perturb(rounded(raw[name], dtype_name), name) for name in ARRAY_NAMES}
    values["model_mean"] = mean_part(values["model_output"], case)
    return values


def impl_inputs(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """The impl-side inputs: the case's arrays as tensors of `dtype` on `device`; plus ``model_mean``."""
    raw = _case_float64(case)
    values = {name: to_torch(raw[name], dtype, device) for name in ARRAY_NAMES}
    values["model_mean"] = mean_part(values["model_output"], case)
    return values


def named_outputs(keys: Iterable[str] | None, result: Any) -> Outputs:
    """Either side's result as float64 arrays by name: a dict (its `keys`, all of them when None), a tuple
    (zipped with `keys`) or one array (the single key)."""

    def as_array(value: Any) -> FloatArray:
        if isinstance(value, torch.Tensor):
            return to_numpy(value)
        return np.asarray(value, dtype=np.float64)

    if isinstance(result, Mapping):
        names = tuple(result) if keys is None else tuple(keys)
        return {key: as_array(result[key]) for key in names}
    names = tuple(keys or ())
    values = result if isinstance(result, tuple) else (result,)
    return {key: as_array(value) for key, value in zip(names, values, strict=True)}


def impl_mean_variance(
    case: sp.StepCase, dtype: torch.dtype, device: torch.device
) -> tuple[dict[str, torch.Tensor], RecordingModel, dict[str, torch.Tensor], torch.Tensor]:
    """(p_mean_variance output, the recording model, the inputs, t) of the impl on one case."""
    x = impl_inputs(case, dtype, device)
    t, _ = t_arrays(case, device)
    model = RecordingModel(x["model_output"])
    out = impl_diffusion(case.process).p_mean_variance(
        model, x["x_t"], t, case.clip_denoised, denoised_fn_torch if case.use_denoised_fn else None
    )
    return out, model, x, t


def reference_mean_variance(
    case: sp.StepCase, dtype_name: str, perturb: Perturb
) -> tuple[dict[str, FloatArray], DiffusionTables, dict[str, FloatArray]]:
    """(p_mean_variance output, the tables, the inputs) of the reference on one case."""
    x = reference_inputs(case, dtype_name, perturb)
    tab = reference_tables(case.process, perturb)
    out = p_mean_variance(
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
