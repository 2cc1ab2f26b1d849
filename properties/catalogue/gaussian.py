"""Catalogue entries of `reference.gaussian`: the Gaussian KL, the approximate CDF and the discretized
log-likelihood, each on seeded arrays, with the rounding magnitudes of their cancelling terms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

import impl
from properties import magnitudes as mag
from properties import strategies as sp
from properties.catalogue.entry import Entry, FloatArray, Outputs
from properties.compare import Perturb
from properties.marshal import rounded, to_numpy, to_torch
from reference.gaussian import approx_standard_normal_cdf, discretized_gaussian_log_likelihood, normal_kl
from testing.tolerances import ReferenceOp

GaussianCase = tuple[tuple[int, ...], int]  # (shape, seed)
Arguments = tuple[tuple[Any, ...], dict[str, Any]]  # (positional, keyword)
GAUSSIAN_CASES = st.tuples(sp.SHAPES, sp.SEEDS)


def _gaussian_arrays(case: GaussianCase) -> dict[str, FloatArray]:
    shape, seed = case
    rng = np.random.default_rng(seed)
    x = sp.pixel_grid(rng, shape)
    return {
        "m1": rng.standard_normal(shape),
        "lv1": rng.uniform(-15.0, 2.0, size=shape),
        "m2": rng.standard_normal(shape),
        "lv2": rng.uniform(-15.0, 2.0, size=shape),
        "z": 3.0 * rng.standard_normal(shape),
        "x": x,
        "means": x + 0.05 * rng.standard_normal(shape),
        "log_scales": rng.uniform(-7.0, 0.0, size=shape),
    }


def _kl_args(values: dict[str, Any]) -> Arguments:
    return (values["m1"], values["lv1"], values["m2"], values["lv2"]), {}


def _cdf_args(values: dict[str, Any]) -> Arguments:
    return (values["z"],), {}


def _likelihood_args(values: dict[str, Any]) -> Arguments:
    return (values["x"],), {"means": values["means"], "log_scales": values["log_scales"]}


def _kl_magnitude(v: dict[str, FloatArray]) -> FloatArray:
    return mag.kl_terms(v["lv1"], v["lv2"])


def _cdf_magnitude(v: dict[str, FloatArray]) -> FloatArray:
    return mag.cdf_terms(v["z"])


def _likelihood_magnitude(v: dict[str, FloatArray]) -> FloatArray:
    return mag.log_likelihood_terms(v["x"], v["means"], v["log_scales"])


def _gaussian_entry(
    *,
    name: str,
    impl_fn: Callable[..., torch.Tensor],
    reference: Callable[..., FloatArray],
    arguments: Callable[[dict[str, Any]], Arguments],
    terms: Callable[[dict[str, FloatArray]], FloatArray],
) -> Entry:
    """An entry calling both sides with the same named arrays (`arguments` picks them)."""

    def run_impl(case: GaussianCase, dtype: torch.dtype, device: torch.device) -> Outputs:
        values = {k: to_torch(v, dtype, device) for k, v in _gaussian_arrays(case).items()}
        positional, keywords = arguments(values)
        return {"out": to_numpy(impl_fn(*positional, **keywords))}

    def run_ref(case: GaussianCase, dtype_name: str, perturb: Perturb) -> Outputs:
        raw = _gaussian_arrays(case)
        # x selects the bin (edges at ±0.999): it is data, exact on the 8-bit grid, so it is not perturbed.
        values = {
            k: (rounded(v, dtype_name) if k == "x" else perturb(rounded(v, dtype_name), k))
            for k, v in raw.items()
        }
        positional, keywords = arguments(values)
        return {"out": np.asarray(reference(*positional, **keywords))}

    def magnitude(case: GaussianCase, dtype_name: str) -> Outputs:
        return {"out": terms({k: rounded(a, dtype_name) for k, a in _gaussian_arrays(case).items()})}

    return Entry(
        name=name,
        impl=impl_fn,
        reference=reference,
        strategy=GAUSSIAN_CASES,
        call_impl=run_impl,
        call_reference=run_ref,
        op=ReferenceOp.LIKELIHOOD,
        covers=(impl_fn,),
        magnitude=magnitude,
    )


ENTRIES: tuple[Entry, ...] = (
    _gaussian_entry(
        name="normal_kl",
        impl_fn=impl.normal_kl,
        reference=normal_kl,
        arguments=_kl_args,
        terms=_kl_magnitude,
    ),
    _gaussian_entry(
        name="approx_standard_normal_cdf",
        impl_fn=impl.approx_standard_normal_cdf,
        reference=approx_standard_normal_cdf,
        arguments=_cdf_args,
        terms=_cdf_magnitude,
    ),
    _gaussian_entry(
        name="discretized_gaussian_log_likelihood",
        impl_fn=impl.discretized_gaussian_log_likelihood,
        reference=discretized_gaussian_log_likelihood,
        arguments=_likelihood_args,
        terms=_likelihood_magnitude,
    ),
)
