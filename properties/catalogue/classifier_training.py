"""Catalogue entries of `reference.classifier_training` [S58]–[S59]: the noisy-image classifier's loss and
its per-quarter top-k accuracy (``impl.train.classifier_metrics``).

A drawn case carries a seed and sizes; the logits are expanded from it on a grid of multiples of 1/4 in
[−30, 30] (exact in float32 and float64, so both tiers see the same numbers, and coarse enough that ties,
which [S58] breaks by class index, are frequent).  The first four rows have one timestep in each quarter of
[0, T), so no quarter is empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st

from impl.train import classifier_metrics as cm
from impl.train.distributed import DistContext
from properties.catalogue.entry import Entry, FloatArray, Outputs
from properties.compare import Perturb
from reference.classifier_training import binned_topk_accuracy, cross_entropy
from testing.tolerances import ReferenceOp


@dataclass(frozen=True)
class LogitCase:
    """``rows`` logit rows over ``classes`` classes (scale: grid half-width), labels, timesteps in [0, T)."""

    seed: int
    rows: int
    classes: int
    num_timesteps: int
    k: int
    scale: int

    def arrays(self) -> tuple[FloatArray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        logits = rng.integers(-4 * self.scale, 4 * self.scale + 1, size=(self.rows, self.classes)) / 4.0
        labels = rng.integers(0, self.classes, size=self.rows)
        T = self.num_timesteps
        first = np.array([(b * T + 3) // 4 for b in range(4)])  # ⌈bT/4⌉ lies in quarter b
        t = np.concatenate([first, rng.integers(0, T, size=self.rows - 4)])
        return logits.astype(np.float64), labels.astype(np.int64), t.astype(np.int64)


@st.composite
def logit_cases(draw: st.DrawFn) -> LogitCase:
    classes = draw(st.integers(1, 20))
    return LogitCase(
        seed=draw(st.integers(0, 2**32 - 1)),
        rows=draw(st.integers(4, 40)),
        classes=classes,
        num_timesteps=draw(st.sampled_from([4, 7, 10, 1000, 4000])),
        k=draw(st.integers(1, classes + 1)),
        scale=draw(st.sampled_from([1, 3, 30])),
    )


def _tensors(
    case: LogitCase, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits, labels, t = case.arrays()
    return (
        torch.as_tensor(logits, dtype=dtype, device=device),
        torch.as_tensor(labels, device=device),
        torch.as_tensor(t, device=device),
    )


# ---------------------------------------------------------------- [S58] top-k accuracy per quarter
def _accuracy_impl(case: LogitCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    logits, labels, t = _tensors(case, dtype, device)
    out = {}
    for k in sorted({1, case.k}):
        acc = cm.binned_topk_accuracy(logits, labels, t, case.num_timesteps, k)
        out[f"acc{k}"] = acc.cpu().numpy().astype(np.float64)
    return out


def _accuracy_ref(case: LogitCase, dtype_name: str, perturb: Perturb) -> Outputs:
    # The outputs are counts / n of comparisons between grid values (exact in both tiers): a relative
    # perturbation either changes no comparison or breaks a tie, so the inputs are not perturbed and the
    # op's zero tolerance makes the comparison "equal counts".
    logits, labels, t = case.arrays()
    return {
        f"acc{k}": binned_topk_accuracy(logits, labels, t, case.num_timesteps, k) for k in sorted({1, case.k})
    }


def _accumulator_impl(case: LogitCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    logits, labels, t = _tensors(case, dtype, device)
    acc = cm.HeldOutAccumulator(case.num_timesteps, device)
    half = case.rows // 2  # two calls: the sums must add up across batches
    acc.add(logits[:half], labels[:half], t[:half])
    acc.add(logits[half:], labels[half:], t[half:])
    record = acc.reduce(DistContext())
    return {f"acc{k}": np.array([record[f"val_acc{k}_q{b}"] for b in range(cm.NUM_T_BINS)]) for k in cm.TOPK}


def _accumulator_ref(case: LogitCase, dtype_name: str, perturb: Perturb) -> Outputs:
    logits, labels, t = case.arrays()  # not perturbed: see _accuracy_ref
    return {f"acc{k}": binned_topk_accuracy(logits, labels, t, case.num_timesteps, k) for k in cm.TOPK}


# ---------------------------------------------------------------- [S59] cross-entropy
def _ce_impl(case: LogitCase, dtype: torch.dtype, device: torch.device) -> Outputs:
    logits, labels, _ = _tensors(case, dtype, device)
    return {"loss": cm.per_sample_cross_entropy(logits, labels).cpu().numpy().astype(np.float64)}


def _ce_ref(case: LogitCase, dtype_name: str, perturb: Perturb) -> Outputs:
    logits, labels, _ = case.arrays()
    return {"loss": cross_entropy(perturb(logits, "logits"), labels)}


def _ce_magnitude(case: LogitCase, dtype_name: str) -> Outputs:
    """1 + 2·max_j |z_ij| per row: the size of log Σ exp(z − m) (>= 0, <= log K) plus the terms m and
    z_y that cancel in ``m + log Σ exp(z − m) − z_y`` when the label's logit is the largest."""
    logits = case.arrays()[0]
    return {"loss": 1.0 + 2.0 * np.abs(logits).max(axis=1)}


ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="binned_topk_accuracy",
        impl=cm.binned_topk_accuracy,
        reference=binned_topk_accuracy,
        strategy=logit_cases(),
        call_impl=_accuracy_impl,
        call_reference=_accuracy_ref,
        op=ReferenceOp.CLASSIFIER_ACCURACY,
        covers=(cm.binned_topk_accuracy, cm.topk_hits, cm.timestep_bins),
    ),
    Entry(
        name="held_out_accumulator",
        impl=cm.HeldOutAccumulator,
        reference=binned_topk_accuracy,
        strategy=logit_cases(),
        call_impl=_accumulator_impl,
        call_reference=_accumulator_ref,
        op=ReferenceOp.CLASSIFIER_ACCURACY,
        covers=(cm.HeldOutAccumulator,),
    ),
    Entry(
        name="classifier_cross_entropy",
        impl=cm.per_sample_cross_entropy,
        reference=cross_entropy,
        strategy=logit_cases(),
        call_impl=_ce_impl,
        call_reference=_ce_ref,
        op=ReferenceOp.CLASSIFIER_CROSS_ENTROPY,
        covers=(cm.per_sample_cross_entropy,),
        magnitude=_ce_magnitude,
    ),
)
