"""The impl tables: one field list (`DiffusionTables[ArrayT]`), host and device instances mapped from it,
the original `diffusion.<table>` attributes read from it, and `training_losses` using the caller's x_t."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch

import reference.process as ref_process
import reference.schedule as ref_schedule
from impl.diffusion import objectives, process
from impl.diffusion.enums import LossType, ModelMeanType, ModelVarType
from impl.diffusion.gaussian_diffusion import GaussianDiffusion
from impl.diffusion.schedule import (
    TABLE_NAMES,
    DiffusionTables,
    diffusion_tables,
    get_named_beta_schedule,
    tables_on,
)

# The table attributes improved-diffusion's GaussianDiffusion exposes (its public API).
ORIGINAL_ATTRIBUTES = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "alphas_cumprod_next",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)


def _diffusion(mean_type: ModelMeanType = ModelMeanType.EPSILON) -> GaussianDiffusion:
    return GaussianDiffusion(
        betas=get_named_beta_schedule("cosine", 12),
        model_mean_type=mean_type,
        model_var_type=ModelVarType.FIXED_LARGE,
        loss_type=LossType.MSE,
    )


def test_the_field_list_is_the_dataclass_fields() -> None:
    assert tuple(f.name for f in dataclasses.fields(DiffusionTables)) == TABLE_NAMES
    assert set(ORIGINAL_ATTRIBUTES) <= set(TABLE_NAMES)


def test_the_original_table_attributes_are_the_float64_host_tables() -> None:
    diffusion = _diffusion()
    for name in TABLE_NAMES:
        table = getattr(diffusion, name)
        assert table is getattr(diffusion.tables, name), name
        assert table.dtype == np.float64 and table.shape == (12,), name
    with pytest.raises(AttributeError, match="no attribute 'betaz'"):
        _ = diffusion.betaz
    assert not hasattr(diffusion, "posterior_mean_coef3")
    restored = pickle.loads(pickle.dumps(diffusion))  # a half-built object must not recurse into tables
    assert np.array_equal(restored.alphas_cumprod, diffusion.alphas_cumprod)


def test_host_tables_match_the_reference_tables_field_by_field() -> None:
    betas = get_named_beta_schedule("linear", 40)
    host, oracle = diffusion_tables(betas), ref_schedule.diffusion_tables(betas)
    shared = [f.name for f in dataclasses.fields(oracle)]
    assert set(shared) <= set(TABLE_NAMES)
    for name in shared:
        # Same float64 formulas on both sides; 1e-12 relative covers a different order of a few ops.
        np.testing.assert_allclose(
            getattr(host, name), getattr(oracle, name), rtol=1e-12, atol=0, err_msg=name
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_device_tables_are_the_host_tables_rounded_once(dtype: torch.dtype) -> None:
    host = diffusion_tables(get_named_beta_schedule("cosine", 9))
    device_tables = tables_on(host, torch.device("cpu"), dtype)
    assert device_tables.num_timesteps == host.num_timesteps == 9
    for name in TABLE_NAMES:
        tensor = getattr(device_tables, name)
        assert tensor.dtype == dtype and tensor.device.type == "cpu", name
        expected = torch.from_numpy(getattr(host, name)).to(dtype)  # one rounding from float64
        assert torch.equal(tensor, expected), name


def test_training_losses_use_the_x_t_they_are_given() -> None:
    """The loss is computed at the caller's x_t (its q_sample, the one the network saw), not a second one:
    with PREVIOUS_X the MSE target is the posterior mean of (x_0, x_t)."""
    diffusion = _diffusion(ModelMeanType.PREVIOUS_X)
    gen = torch.Generator().manual_seed(3)
    x_start, noise, output = (torch.randn(2, 1, 2, 2, generator=gen, dtype=torch.float64) for _ in range(3))
    x_t = torch.randn(2, 1, 2, 2, generator=gen, dtype=torch.float64)  # deliberately not q_sample(x_start)
    t = torch.tensor([5, 0])
    tab = diffusion.tables_for(x_start)
    terms = objectives.training_losses(
        tab,
        output,
        x_start,
        x_t,
        t,
        noise,
        model_mean_type=ModelMeanType.PREVIOUS_X,
        model_var_type=ModelVarType.FIXED_LARGE,
        loss_type=LossType.MSE,
    )
    oracle = ref_schedule.diffusion_tables(get_named_beta_schedule("cosine", 12))
    target = ref_process.q_posterior_mean_variance(oracle, x_start.numpy(), x_t.numpy(), t.numpy())[0]
    expected = ((target - output.numpy()) ** 2).mean(axis=(1, 2, 3))
    # float64 on both sides, a handful of operations: 1e-12 relative.
    np.testing.assert_allclose(terms["mse"].numpy(), expected, rtol=1e-12, atol=0)
    at_q_sample = process.q_sample(tab, x_start, t, noise)
    assert not torch.allclose(at_q_sample, x_t)  # so the check above could tell the two apart
