"""One builder for the per-step entries that differ only in which named values each side is passed.

Both sides of such an entry take the case's named values: on the impl side, a method of the case's
process ``impl_diffusion(spec).<method>(*impl_args, **impl_keywords)``; on the reference side,
``reference(tables, *reference_args, **reference_keywords)``.  The names available are

- the arrays ``x_start``, ``noise``, ``step_noise``, ``model_output``, ``model_mean`` (its first C
  channels), ``grad``, ``x_t`` and the timesteps ``t`` (tensors on the impl side, perturbed float64
  arrays on the reference side, see `properties.catalogue.step_inputs`);
- ``clip_denoised`` (the case's flag), on both sides;
- impl only: ``model``, a stand-in network returning ``model_output``;
- reference only: ``model_mean_type``, ``model_var_type``, ``loss_type`` (the case's process types).

The method is looked up by the impl callable's name on the process, so a subclass override
(SpacedDiffusion) is what runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from properties import strategies as sp
from properties.catalogue.entry import Entry, Magnitude, Outputs
from properties.catalogue.step_inputs import STEP_CASES, impl_inputs, named_outputs, reference_inputs
from properties.compare import Perturb
from properties.marshal import RecordingModel, impl_diffusion, reference_tables, t_arrays
from testing.tolerances import ReferenceOp

IMPL_ONLY = frozenset({"model"})
REFERENCE_ONLY = frozenset(
    {"model_mean_type", "model_var_type", "loss_type", "loss_weighting", "min_snr_gamma", "vlb_weight"}
)


def impl_values(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> dict[str, Any]:
    """Every named value the impl side of a step entry may be passed."""
    x = impl_inputs(case, dtype, device)
    t, _ = t_arrays(case, device)
    return {**x, "t": t, "model": RecordingModel(x["model_output"]), "clip_denoised": case.clip_denoised}


def reference_values(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> dict[str, Any]:
    """Every named value the reference side of a step entry may be passed."""
    spec = case.process
    return {
        **reference_inputs(case, dtype_name, perturb),
        "t": np.asarray(case.t),
        "clip_denoised": case.clip_denoised,
        "model_mean_type": spec.mean_type,
        "model_var_type": spec.var_type,
        "loss_type": spec.loss_type,
        "loss_weighting": spec.loss_weighting,
        "min_snr_gamma": spec.min_snr_gamma,
        "vlb_weight": spec.vlb_weight,
    }


def _check_names(name: str, side: str, names: tuple[str, ...], excluded: frozenset[str]) -> None:
    wrong = sorted(set(names) & excluded)
    if wrong:
        raise ValueError(f"catalogue entry {name!r}: {side} side cannot be passed {wrong}")


def step_entry(
    *,
    name: str,
    impl: Callable[..., Any],
    reference: Callable[..., Any],
    impl_args: tuple[str, ...],
    reference_args: tuple[str, ...],
    outputs: tuple[str, ...] | None,
    op: ReferenceOp,
    impl_keywords: tuple[str, ...] = (),
    reference_keywords: tuple[str, ...] = (),
    covers: tuple[Callable[..., Any], ...] | None = None,
    magnitude: Magnitude | None = None,
) -> Entry:
    """An entry over `STEP_CASES` whose sides take the named values above (`outputs`: the result's names,
    zipped with a tuple, selected from a dict, or None for every key of a dict)."""
    _check_names(name, "impl", impl_args + impl_keywords, REFERENCE_ONLY)
    _check_names(name, "reference", reference_args + reference_keywords, IMPL_ONLY)
    method = impl.__name__

    def call_impl(case: sp.StepCase, dtype: torch.dtype, device: torch.device) -> Outputs:
        values = impl_values(case, dtype, device)
        bound = getattr(impl_diffusion(case.process), method)
        result = bound(*(values[a] for a in impl_args), **{k: values[k] for k in impl_keywords})
        return named_outputs(outputs, result)

    def call_reference(case: sp.StepCase, dtype_name: str, perturb: Perturb) -> Outputs:
        values = reference_values(case, dtype_name, perturb)
        tab = reference_tables(case.process, perturb)
        result = reference(
            tab, *(values[a] for a in reference_args), **{k: values[k] for k in reference_keywords}
        )
        return named_outputs(outputs, result)

    return Entry(
        name=name,
        impl=impl,
        reference=reference,
        strategy=STEP_CASES,
        call_impl=call_impl,
        call_reference=call_reference,
        op=op,
        covers=(impl,) if covers is None else covers,
        magnitude=magnitude,
    )
