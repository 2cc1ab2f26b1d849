"""Catalogue entry of `reference.classifier_guidance` [S48], [S49]: the autograd guidance gradient of
`impl.sampling.classifier_guidance.classifier_cond_fn` through a linear-softmax classifier (a tiny torch
module), against the closed form s·(W_y − Σ_k p_k W_k).

A drawn case carries a shape (B, C, H, W), a class count K, a scale s, a weight scale and a seed; W, b, x
and y are expanded from it with a NumPy generator.  The magnitude adds what relative input perturbations
cannot see: the size of the logit sums (whose rounding moves every p_k) and of the backward contraction's
terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st
from torch import nn

from impl.sampling.classifier_guidance import classifier_cond_fn
from properties import strategies as sp
from properties.catalogue.entry import Entry, FloatArray, Outputs
from properties.compare import Perturb
from properties.marshal import rounded, to_numpy, to_torch
from reference.classifier_guidance import linear_classifier_guidance, linear_softmax_probs
from testing.tolerances import ReferenceOp


@dataclass(frozen=True)
class LinearCase:
    """A linear-softmax classifier W (K × D), b (K,) and inputs x (B, C, H, W), labels y, scale s."""

    shape: tuple[int, int, int, int]
    num_classes: int
    scale: float
    weight_scale: float
    seed: int

    def arrays(self) -> dict[str, FloatArray]:
        rng = np.random.default_rng(self.seed)
        dim = int(np.prod(self.shape[1:]))
        return {
            "weight": self.weight_scale * rng.standard_normal((self.num_classes, dim)),
            "bias": rng.standard_normal(self.num_classes),
            "x": rng.standard_normal(self.shape),
        }

    def labels(self) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
        rng = np.random.default_rng(self.seed + 1)
        return rng.integers(0, self.num_classes, size=self.shape[0]).astype(np.int64)


LINEAR_CASES = st.builds(
    LinearCase,
    shape=sp.SHAPES,
    num_classes=st.integers(2, 10),
    scale=st.sampled_from([0.5, 1.0, 3.0, 30.0]),
    weight_scale=st.sampled_from([0.1, 1.0, 5.0]),
    seed=st.integers(0, 2**31 - 1),
)


class LinearClassifier(nn.Module):
    """logits = W·vec(x) + b, ignoring the timestep (the [S49] classifier as a torch module)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype, device=weight.device)
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x.reshape(x.shape[0], -1))
        return out


def _impl(case: LinearCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    values = {k: to_torch(v, dtype, device) for k, v in case.arrays().items()}
    classifier = LinearClassifier(values["weight"], values["bias"])
    y = torch.as_tensor(case.labels(), device=device)
    t = torch.zeros(case.shape[0], dtype=torch.long, device=device)
    cond_fn = classifier_cond_fn(classifier, case.scale)
    with torch.no_grad():  # as in the sampling loops
        grad = cond_fn(values["x"], t, y=y)
    return {"grad": to_numpy(grad)}


def _reference(case: LinearCase, dtype_name: str, perturb: Perturb) -> Outputs:
    v = {k: perturb(rounded(a, dtype_name), k) for k, a in case.arrays().items()}
    return {"grad": linear_classifier_guidance(v["weight"], v["bias"], v["x"], case.labels(), case.scale)}


def _magnitude(case: LinearCase, dtype_name: str) -> Outputs:
    """s·[L·Σ_k p_k|W_kd| + Σ_k |W_kd|(1[k=y] + p_k)], L = max_k (Σ_d |W_kd x_d| + |b_k|) per sample: the
    logit sums' size (their rounding moves p_k by <= 2 p_k·δf) and the backward contraction's terms."""
    v = {k: rounded(a, dtype_name) for k, a in case.arrays().items()}
    w, b, x = v["weight"], v["bias"], v["x"]
    flat = np.abs(x.reshape(x.shape[0], -1))
    p = linear_softmax_probs(w, b, x)
    onehot = np.eye(case.num_classes)[case.labels()]
    logit_size = (flat @ np.abs(w).T + np.abs(b)).max(axis=1, keepdims=True)
    terms = logit_size * (p @ np.abs(w)) + (onehot + p) @ np.abs(w)
    return {"grad": (case.scale * terms).reshape(x.shape)}


ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="classifier_cond_fn",
        impl=classifier_cond_fn,
        reference=linear_classifier_guidance,
        strategy=LINEAR_CASES,
        call_impl=_impl,
        call_reference=_reference,
        op=ReferenceOp.CLASSIFIER_GRADIENT,
        magnitude=_magnitude,
    ),
)
