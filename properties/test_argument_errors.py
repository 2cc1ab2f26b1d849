"""Bad arguments to the tensor-level objectives raise a ValueError that names the argument.

`impl.diffusion.objectives.training_losses` is public and takes its enums as plain arguments; with a fixed
variance and an MSE loss, the mean type is first used when the L_simple target [S21] is chosen, which must
reject anything but a `ModelMeanType` by name.  Found by mutation testing (docs/testing.md).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

import impl
from impl.diffusion import objectives
from properties import strategies as sp
from properties.marshal import impl_diffusion


@pytest.mark.parametrize("loss_type", [impl.LossType.MSE, impl.LossType.RESCALED_MSE])
@pytest.mark.parametrize("bad", ["EPSILON", None, 0], ids=["name", "none", "int"])
@given(case=sp.step_cases(max_steps=6))
@settings(max_examples=5)
def test_training_losses_rejects_a_mean_type_by_name(
    case: sp.StepCase, loss_type: impl.LossType, bad: object
) -> None:
    """A mean type that is not a ModelMeanType gives ValueError naming `model_mean_type` and the bad value."""
    diffusion = impl_diffusion(case.process)
    generator = torch.Generator().manual_seed(case.seed)
    x_start = torch.rand(case.shape, generator=generator, dtype=torch.float64) * 2.0 - 1.0
    noise = torch.randn(case.shape, generator=generator, dtype=torch.float64)
    t = torch.tensor(case.t, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"model_mean_type.*{bad!r}"):
        objectives.training_losses(
            diffusion.tables_for(x_start),
            torch.zeros(case.shape, dtype=torch.float64),
            x_start,
            diffusion.q_sample(x_start, t, noise=noise),
            t,
            noise,
            model_mean_type=bad,  # type: ignore[arg-type]
            model_var_type=impl.ModelVarType.FIXED_SMALL,
            loss_type=loss_type,
        )
