"""The CPU memory budget: state arithmetic from its formula, activation counts that respond to the switch."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks import configs
from benchmarks.memory_budget import (
    GIB,
    ActivationBudget,
    activation_budget,
    projected_peak_gib,
    saved_tensor_bytes,
    state_bytes,
)


def test_state_bytes_formula() -> None:
    # float32 params + grads + 2 Adam moments + 1 EMA = 20 B per parameter; bf16 adds a 2-byte weight copy
    assert state_bytes(1000, "fp32") == 20_000
    assert state_bytes(1000, "bf16") == 22_000
    budget = ActivationBudget(
        "fp32", False, per_image_bytes=2**20, per_image_float32_bytes=2**20, fixed_bytes=0
    )
    assert projected_peak_gib(budget, 1000, batch=128) == (20_000 + 128 * 2**20) / GIB


def test_saved_tensor_bytes_counts_a_linear_layers_input_once() -> None:
    layer = nn.Linear(16, 4)
    x = torch.randn(8, 16, requires_grad=True)

    def forward() -> None:
        y = layer(x)
        (y * y).sum()  # mul saves y twice: one storage

    saved = saved_tensor_bytes(forward, exclude=layer)
    # the linear saves x (8×16 float32); the square saves its output y (8×4) once
    assert saved == {torch.float32: (8 * 16 + 8 * 4) * 4}


def test_tiny_budget_shrinks_with_recompute() -> None:
    tiny = configs.cifar10("tiny")
    plain = activation_budget(tiny, "fp32", recompute_norms=False)
    recomputed = activation_budget(tiny, "fp32", recompute_norms=True)
    assert 0 < recomputed.per_image_bytes < plain.per_image_bytes
    # in fp32 everything saved is float32 except the t indices and boolean masks (< 1 %)
    assert 0.99 * plain.per_image_bytes < plain.per_image_float32_bytes <= plain.per_image_bytes
