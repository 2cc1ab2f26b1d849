"""Tests of the paper-scale FLOP budget (counted on the meta device, no GPU needed)."""

from __future__ import annotations

import pytest

from benchmarks import configs
from benchmarks.flop_budget import Budget, ModelFlops, budgets, count_model_flops, format_table


@pytest.mark.slow
def test_cifar10_paper_config_is_the_papers_network() -> None:
    flops = count_model_flops(configs.CIFAR10_PAPER)
    # SPEC §8: the paper's CIFAR-10 model has 52,546,438 parameters (compat/unet_cifar10_32.tsv)
    assert flops.parameters == 52_546_438
    # backward needs about two forward passes' worth of products (weight and input gradients),
    # less the input-gradient of the first convolution, which is never needed
    assert 2.5 * flops.forward_per_image < flops.train_per_image < 3.0 * flops.forward_per_image


def test_budget_arithmetic() -> None:
    row = Budget("w", flops_per_image=50e9, ceiling_images_per_s=1000e12 / 50e9, target_images_per_s=4000.0)
    assert row.ceiling_images_per_s == pytest.approx(20_000.0)
    assert row.target_mfu == pytest.approx(0.2)
    assert Budget("w", 1.0, 1.0, None).target_mfu is None


def test_budget_rows_scale_with_steps() -> None:
    cifar = ModelFlops("cifar10", 1, forward_per_image=10, train_per_image=30)
    imagenet = ModelFlops("imagenet64", 1, forward_per_image=40, train_per_image=120)
    rows = {row.workload: row for row in budgets(cifar, imagenet, peak=1200.0)}
    assert rows["train_step/cifar10 (fwd+bwd)"].ceiling_images_per_s == pytest.approx(40.0)
    assert rows["sample_loop_50_steps/cifar10"].flops_per_image == pytest.approx(500.0)
    assert rows["calc_bpd_loop full chain/cifar10 (T=4000)"].flops_per_image == pytest.approx(40_000.0)
    assert "| train_step/imagenet64 (fwd+bwd) |" in format_table(list(rows.values()), 1200.0)
