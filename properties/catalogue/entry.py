"""The catalogue's entry type: one impl ≡ reference pairing, built with keyword arguments only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from numpy.typing import NDArray

from properties.compare import Perturb
from testing.tolerances import ReferenceOp

FloatArray = NDArray[np.float64]
Outputs = dict[str, FloatArray]
# (drawn case, torch dtype, device) -> the impl's outputs as float64 arrays
ImplCall = Callable[[Any, torch.dtype, torch.device], Outputs]
# (drawn case, dtype tier name, perturbation of every input and table) -> the reference's outputs
ReferenceCall = Callable[[Any, str, Perturb], Outputs]
# (drawn case, dtype tier name) -> rounding magnitudes perturbing the inputs cannot reveal, per output
Magnitude = Callable[[Any, str], Outputs]

BOTH_TIERS = ("float64", "float32")
FLOAT64_ONLY = ("float64",)
ALL_DEVICES = ("cpu", "cuda")


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One impl ≡ reference pairing: both callables, the inputs, how to call each side, the budget."""

    name: str  # the entry's name (docs/spec.md's index names entries by it)
    impl: Callable[..., Any]  # the impl callable under test
    reference: Callable[..., Any]  # the float64 oracle function it must agree with
    strategy: st.SearchStrategy[Any]  # the drawn cases
    call_impl: ImplCall
    call_reference: ReferenceCall
    op: ReferenceOp  # its tolerance: testing.tolerances.impl_vs_reference(dtype tier, op)
    covers: tuple[Callable[..., Any], ...] = ()  # the public impl callables it exercises (meta-test)
    dtypes: tuple[str, ...] = BOTH_TIERS
    raises_alike: bool = False  # a ValueError on one side must be a ValueError on the other
    magnitude: Magnitude | None = None  # see properties.magnitudes
    devices: tuple[str, ...] = ALL_DEVICES

    @property
    def reference_name(self) -> str:
        """The oracle function's dotted name, e.g. ``reference.process.q_sample``."""
        return f"{self.reference.__module__}.{self.reference.__qualname__}"
