"""Catalogue entries of `reference.guidance_free` [S50]–[S52]: the classifier-free-guided network output
(through the `ClassifierFreeGuidance` wrapper and its one batched call) and the training label dropout.

A guided-output case draws a shape (B, C, H, W), whether the output carries learned-variance channels
(2C), a scale w (a multiple of 1/4, exact in float32, the short-circuited 0 and 1 included) and a seed
from which the conditional and unconditional outputs are expanded.  The impl side wraps a stand-in
network that returns those outputs for the labels it is called with (the null label's rows the
unconditional ones), so the entry checks the batching, the split and the combination together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from impl.sampling.guidance_free import ClassifierFreeGuidance, guided_eps, guided_model_output
from impl.train.label_dropout import drop_labels as impl_drop_labels
from properties import strategies as sp
from properties.catalogue.entry import FLOAT64_ONLY, Entry, FloatArray, Outputs
from properties.compare import Perturb
from properties.marshal import rounded, to_numpy, to_torch
from reference.guidance_free import drop_labels
from reference.guidance_free import guided_model_output as reference_guided_output
from testing.tolerances import ReferenceOp

NUM_CLASSES = 5  # the null label is 5


@dataclass(frozen=True)
class GuidedCase:
    shape: tuple[int, int, int, int]  # (B, C, H, W) of x
    learned_sigma: bool
    guidance_scale: float
    seed: int

    def outputs(self) -> tuple[FloatArray, FloatArray]:
        """The conditional and unconditional network outputs, (B, C or 2C, H, W)."""
        rng = np.random.default_rng(self.seed)
        b, c, h, w = self.shape
        shape = (b, 2 * c if self.learned_sigma else c, h, w)
        cond = rng.standard_normal(shape)
        # near-equal branches sometimes (a well-trained model's): the difference then cancels
        uncond = cond + rng.choice([1e-3, 1.0]) * rng.standard_normal(shape)
        return cond, uncond


GUIDED_CASES = st.builds(
    GuidedCase,
    shape=sp.SHAPES,
    learned_sigma=st.booleans(),
    guidance_scale=st.integers(-8, 40).map(lambda k: k / 4),
    seed=sp.SEEDS,
)


class _TwoBranchModel:
    """A stand-in network: row i of a call answers ``uncond[i]`` under the null label, else ``cond[i]``."""

    def __init__(self, cond: torch.Tensor, uncond: torch.Tensor) -> None:
        self.cond, self.uncond = cond, uncond
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        assert y is not None and x.shape[0] == y.shape[0] == t.shape[0]
        batch = self.cond.shape[0]
        rows = torch.arange(x.shape[0], device=x.device) % batch
        null = (y == NUM_CLASSES).view(-1, *([1] * (self.cond.ndim - 1)))
        return torch.where(null, self.uncond[rows], self.cond[rows])


def _guided_impl(case: GuidedCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    cond, uncond = (to_torch(a, dtype, device) for a in case.outputs())
    stand_in = _TwoBranchModel(cond, uncond)
    batch, channels = case.shape[0], case.shape[1]
    x = torch.zeros(case.shape, dtype=dtype, device=device)
    t = torch.zeros(batch, dtype=torch.int64, device=device)
    y = torch.arange(batch, device=device) % NUM_CLASSES
    out = ClassifierFreeGuidance(stand_in, case.guidance_scale, NUM_CLASSES)(x, t, y=y)
    assert stand_in.calls == 1, f"{stand_in.calls} network calls for one guided output"
    assert out.shape == cond.shape and channels in (out.shape[1], out.shape[1] // 2)
    return {"out": to_numpy(out)}


def _guided_ref(case: GuidedCase, dtype_name: str, perturb: Perturb) -> Outputs:
    cond, uncond = (rounded(a, dtype_name) for a in case.outputs())
    out = reference_guided_output(
        perturb(cond, "cond"), perturb(uncond, "uncond"), case.guidance_scale, case.shape[1]
    )
    return {"out": np.asarray(out)}


def _guided_magnitude(case: GuidedCase, dtype_name: str) -> Outputs:
    """The terms [S50]'s 3 ops round against: |w|·(|ε̂(y)| + |ε̂(∅)|) (the difference, the product) and
    |ε̂(∅)| (the sum); the copied variance channels round against nothing."""
    cond, uncond = (rounded(a, dtype_name) for a in case.outputs())
    c = case.shape[1]
    terms = np.zeros_like(cond)
    w = abs(case.guidance_scale)
    terms[:, :c] = w * (np.abs(cond[:, :c]) + np.abs(uncond[:, :c])) + np.abs(uncond[:, :c])
    return {"out": terms}


@dataclass(frozen=True)
class DropCase:
    batch: int
    drop_prob: float
    seed: int
    at_threshold: bool  # put some uniforms exactly at p (u < p is strict)

    def arrays(self) -> tuple[np.ndarray[Any, np.dtype[np.int64]], FloatArray]:
        rng = np.random.default_rng(self.seed)
        labels = rng.integers(0, NUM_CLASSES, size=self.batch).astype(np.int64)
        # float32 uniforms, as the trainer draws them (torch.rand)
        uniforms = rng.random(self.batch).astype(np.float32).astype(np.float64)
        if self.at_threshold:
            uniforms[::2] = np.float64(np.float32(self.drop_prob))
        return labels, uniforms


DROP_CASES = st.builds(
    DropCase,
    batch=st.integers(1, 64),
    drop_prob=st.one_of(
        st.just(0.0), st.floats(0.0, 1.0, exclude_max=True), st.sampled_from([0.1, 0.2, 0.5])
    ),
    seed=sp.SEEDS,
    at_threshold=st.booleans(),
)


def _drop_impl(case: DropCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    labels, uniforms = case.arrays()
    y = torch.as_tensor(labels, device=device)
    u = torch.as_tensor(uniforms.astype(np.float32), device=device)  # the trainer's float32 draws
    out = impl_drop_labels(y, u, case.drop_prob, NUM_CLASSES)
    assert out.dtype == torch.int64
    return {"labels": to_numpy(out)}


def _drop_ref(case: DropCase, dtype_name: str, perturb: Perturb) -> Outputs:
    labels, uniforms = case.arrays()  # labels and the threshold test are exact: nothing to perturb
    return {"labels": np.asarray(drop_labels(labels, uniforms, case.drop_prob, NUM_CLASSES), np.float64)}


ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="classifier_free_guidance",
        impl=ClassifierFreeGuidance.forward,
        reference=reference_guided_output,
        strategy=GUIDED_CASES,
        call_impl=_guided_impl,
        call_reference=_guided_ref,
        op=ReferenceOp.GUIDED_OUTPUT,
        covers=(ClassifierFreeGuidance.forward, guided_model_output, guided_eps),
        magnitude=_guided_magnitude,
    ),
    Entry(
        name="drop_labels",
        impl=impl_drop_labels,
        reference=drop_labels,
        strategy=DROP_CASES,
        call_impl=_drop_impl,
        call_reference=_drop_ref,
        op=ReferenceOp.EXACT,
        dtypes=FLOAT64_ONLY,
    ),
)
