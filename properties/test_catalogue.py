"""impl ≡ reference for every catalogue entry × dtype tier × device, and the coverage meta-test."""

from __future__ import annotations

import enum
import inspect
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given

import impl.diffusion
import impl.evaluate.feature_metrics
import impl.evaluate.frechet
from properties import strategies as sp
from properties.catalogue import CATALOGUE, Entry, entry_named
from properties.compare import assert_outputs_close, identity, reference_sensitivity
from properties.marshal import DTYPES
from testing.tolerances import impl_vs_reference

CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CASES = [
    pytest.param(
        entry, dtype, device, id=f"{entry.name}-{dtype}-{device}", marks=CUDA if device == "cuda" else []
    )
    for entry in CATALOGUE
    for dtype in entry.dtypes
    for device in entry.devices
]


def check_entry(entry: Entry, dtype_name: str, device: torch.device, case: Any) -> None:
    """Run both sides on one drawn case and compare under the (dtype, op) tolerance."""
    torch_dtype = DTYPES[dtype_name]
    try:
        expected = entry.call_reference(case, dtype_name, identity)
    except ValueError:
        if not entry.raises_alike:
            raise
        with pytest.raises(ValueError):
            entry.call_impl(case, torch_dtype, device)
        return
    actual = entry.call_impl(case, torch_dtype, device)
    seed = zlib.crc32(repr(case).encode())
    sensitivity = reference_sensitivity(lambda p: entry.call_reference(case, dtype_name, p), expected, seed)
    if entry.magnitude is not None:
        for key, terms in entry.magnitude(case, dtype_name).items():
            if key in sensitivity:
                sensitivity[key] = sensitivity[key] + terms
    assert_outputs_close(
        actual,
        expected,
        impl_vs_reference(dtype_name, entry.op),
        sensitivity=sensitivity,
        inputs=case,
        label=f"{entry.name} [{dtype_name}, {device}] vs {entry.reference_name}",
    )


@pytest.mark.parametrize("entry, dtype_name, device", CASES)
def test_impl_matches_reference(entry: Entry, dtype_name: str, device: str) -> None:
    """Every paired function agrees with the float64 oracle within its error budget."""

    @given(case=entry.strategy)
    def run(case: Any) -> None:
        check_entry(entry, dtype_name, torch.device(device), case)

    run()


# ---------------------------------------------------------------- coverage meta-test
# The improved-diffusion helpers users call despite the leading underscore.
ORIGINAL_PRIVATE_API = frozenset(
    {
        "_predict_xstart_from_eps",
        "_predict_eps_from_xstart",
        "_predict_xstart_from_xprev",
        "_scale_timesteps",
        "_vb_terms_bpd",
        "_prior_bpd",
    }
)

EXCLUDED: dict[str, str] = {
    "GaussianDiffusion.p_sample_loop": "a loop over p_sample (catalogued); tested in test_loops",
    "GaussianDiffusion.p_sample_loop_progressive": "a loop over p_sample (catalogued); tested in test_loops",
    "GaussianDiffusion.ddim_sample_loop": "a loop over ddim_sample (catalogued); tested in test_loops",
    "GaussianDiffusion.ddim_sample_loop_progressive": "a loop over ddim_sample (catalogued); see test_loops",
    "GaussianDiffusion.ddim_reverse_sample_loop": "a loop over ddim_reverse_sample (catalogued); held to "
    "reference ddim_reverse_step per step and to reference ddim_inversion in test_loops",
    "create_named_schedule_sampler": "name → class mapping; tested in test_samplers",
    "mean_flat": "the mean over non-batch axes, no reference counterpart; inside every 'bound' entry",
    "LossType.is_vb": "a membership test of the enum; tested in test_factory",
    "ScheduleSampler": "abstract base class; its methods and subclasses are catalogued",
    "LossAwareSampler": "abstract base class; its update methods are catalogued (LossSecondMomentResampler)",
    "ScheduleSampler.weights": "abstract; both implementations (Uniform, LossSecondMoment) are catalogued",
    "LossSecondMomentResampler.state_dict": "checkpoint persistence, no math: tested in test_samplers",
    "LossSecondMomentResampler.load_state_dict": "checkpoint persistence, no math: tested in test_samplers",
    "GaussianDiffusion.prepare_device_caches": "builds cached device tables (catalogued: 'tables') before a "
    "compiled trace; its effect, no recompile, is tested in test_compiled_sampling (one graph per loop)",
    "SpacedDiffusion.prepare_device_caches": "adds the timestep map to the above; the one-graph test of "
    "test_compiled_sampling runs a respaced process and fails without it",
    "evaluate.kid_subset_indices": "draws KID's random subsets (no formula: the oracle takes the subsets "
    "as input, and the 'kernel_inception_distance' entry passes it these); its draw without replacement "
    "is tested in tests/evaluate/test_feature_metrics.py",
}

# The modules of impl.evaluate that hold its pure feature metrics (NumPy float64 in, floats out): every
# callable in their __all__ is held to reference/metrics.py.  The rest of impl.evaluate (the Inception
# network, weights, caches, reports, the digits classifier, the NLL loop) is not a formula on arrays.
FEATURE_METRIC_MODULES = (impl.evaluate.frechet, impl.evaluate.feature_metrics)


def _mixins(cls: type) -> list[type]:
    """The impl classes cls inherits that impl.diffusion does not export (e.g. `SamplingLoopMethods`)."""
    exported = set(impl.diffusion.__all__)
    return [b for b in cls.__mro__[1:] if b.__module__.startswith("impl.") and b.__name__ not in exported]


def _own_and_mixin_members(cls: type) -> dict[str, Any]:
    """The class's own attributes plus those of its mixins, unless an exported base already lists them."""
    exported_bases = [b for b in cls.__mro__[1:] if b.__name__ in impl.diffusion.__all__]
    listed = {mixin for base in exported_bases for mixin in _mixins(base)}
    members: dict[str, Any] = {}
    for mixin in reversed(_mixins(cls)):
        if mixin not in listed:
            members.update(vars(mixin))
    members.update(vars(cls))
    return members


def public_callables() -> dict[str, Callable[..., Any]]:
    """Every public function of impl.diffusion and every public (or original-API) method of its classes,
    and, as ``evaluate.<name>``, every public callable of impl.evaluate's feature-metric modules."""
    found: dict[str, Callable[..., Any]] = {}
    for module in FEATURE_METRIC_MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj):  # not the constants (e.g. NEGATIVE_EIGENVALUE_TOLERANCE)
                found[f"evaluate.{name}"] = obj
    for name in impl.diffusion.__all__:
        obj = getattr(impl.diffusion, name)
        if inspect.isclass(obj):
            if not issubclass(obj, enum.Enum):
                found[name] = obj
            for attr, member in _own_and_mixin_members(obj).items():
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                public = not attr.startswith("_") or attr in ORIGINAL_PRIVATE_API
                if public and inspect.isfunction(member):
                    found[f"{name}.{attr}"] = member
        elif callable(obj):
            found[name] = obj
    return found


def test_every_public_diffusion_callable_is_catalogued() -> None:
    """A public impl diffusion function or feature metric without a catalogue entry (or a justified
    exclusion) fails."""
    covered = {id(obj) for entry in CATALOGUE for obj in (entry.impl, *entry.covers)}
    found = public_callables()
    missing = sorted(name for name, obj in found.items() if id(obj) not in covered and name not in EXCLUDED)
    assert not missing, f"public impl callables with no catalogue entry and no exclusion: {missing}"
    stale = sorted(name for name in EXCLUDED if name not in found)
    assert not stale, f"exclusions naming callables that no longer exist: {stale}"
    doubly = sorted(name for name in EXCLUDED if id(found[name]) in covered)
    assert not doubly, f"excluded yet catalogued (drop the exclusion): {doubly}"


def test_entries_have_unique_names_and_pair_with_an_oracle_function() -> None:
    """Entry names are unique (docs/spec.md's index names them) and each reference is an oracle function."""
    names = [entry.name for entry in CATALOGUE]
    assert len(set(names)) == len(names), f"duplicate entry names: {sorted(names)}"
    assert all(entry_named(name).name == name for name in names)
    with pytest.raises(KeyError, match="no catalogue entry named"):
        entry_named("no_such_entry")
    outside = [e.name for e in CATALOGUE if not e.reference_name.startswith("reference.")]
    assert not outside, f"entries whose reference is not a function of reference/: {outside}"


# ---------------------------------------------------------------- every type combination, deterministically
COMBINATION_ENTRIES = ("training_losses", "vb_terms_bpd", "p_sample", "ddim_sample")


def _combination_cases(mean_type: str, var_type: str, loss_type: str) -> list[sp.StepCase]:
    processes = [
        sp.ProcessSpec("linear", 4000, None, mean_type, var_type, loss_type, False),
        sp.ProcessSpec(
            "cosine",
            1000,
            (0, 111, 222, 333, 444, 555, 666, 777, 888, 999),
            mean_type,
            var_type,
            loss_type,
            True,
        ),
    ]
    cases = []
    for process in processes:
        last = process.num_timesteps - 1
        cases.append(sp.StepCase(process, (4, 2, 2, 1), (0, 1, last - 1, last), 17, True, False, True, 1.0))
    return cases


@pytest.mark.parametrize("loss_type", sp.LOSS_TYPES)
@pytest.mark.parametrize("var_type", sp.VAR_TYPES)
@pytest.mark.parametrize("mean_type", sp.MEAN_TYPES)
def test_every_type_combination(mean_type: str, var_type: str, loss_type: str) -> None:
    """Every mean × variance × loss type, plain and respaced, t at 0, 1, T−2, T−1, in both dtype tiers."""
    entries = [entry for entry in CATALOGUE if entry.name in COMBINATION_ENTRIES]
    for case in _combination_cases(mean_type, var_type, loss_type):
        for entry in entries:
            for dtype_name in entry.dtypes:
                check_entry(entry, dtype_name, torch.device("cpu"), case)
