"""Gradient routing of the hybrid objective [S22], checked with autograd.

With a learned variance and an MSE-type loss, the VLB term must train only the variance channels (the
mean channels are detached inside it) and L_simple only the mean channels.  The pure VLB losses (KL)
must instead reach the mean channels, so the detachment is specific to the hybrid objective.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from properties import strategies as sp
from properties.marshal import impl_diffusion

LEARNED = st.sampled_from(("LEARNED", "LEARNED_RANGE"))


def _losses_with_grad(case: sp.StepCase) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
    arrays = sp.case_arrays(case)
    output = torch.tensor(arrays.model_output, dtype=torch.float64, requires_grad=True)
    x_start = torch.tensor(arrays.x_start, dtype=torch.float64)
    noise = torch.tensor(arrays.noise, dtype=torch.float64)
    t = torch.tensor(case.t, dtype=torch.long)

    def model(x: torch.Tensor, t_model: torch.Tensor) -> torch.Tensor:
        return output

    terms = impl_diffusion(case.process).training_losses(model, x_start, t, noise=noise)
    return terms, output, case.shape[1]


@st.composite
def hybrid_cases(draw: st.DrawFn, loss_types: tuple[str, ...]) -> sp.StepCase:
    case = draw(sp.step_cases())
    process = sp.ProcessSpec(
        case.process.schedule,
        case.process.base_steps,
        case.process.kept,
        case.process.mean_type,
        draw(LEARNED),
        draw(st.sampled_from(loss_types)),
        case.process.rescale_timesteps,
    )
    arrays_case = sp.StepCase(process, case.shape, case.t, case.seed, False, False, False, 0.0)
    return arrays_case


@given(case=hybrid_cases(("MSE", "RESCALED_MSE")))
def test_vlb_term_trains_only_the_variance_channels(case: sp.StepCase) -> None:
    """∂ vb / ∂ mean channels = 0 exactly; ∂ vb / ∂ variance channels ≠ 0 for samples with t > 0.

    (At t = 0 the decoder term may saturate at its 1e-12 floor, where every gradient is legitimately 0.)
    """
    terms, output, channels = _losses_with_grad(case)
    (grad,) = torch.autograd.grad(terms["vb"].sum(), output)
    assert torch.count_nonzero(grad[:, :channels]) == 0
    later = torch.tensor(case.t) > 0
    if bool(later.any()):
        assert torch.count_nonzero(grad[later][:, channels:]) > 0


@given(case=hybrid_cases(("MSE", "RESCALED_MSE")))
def test_simple_loss_trains_only_the_mean_channels(case: sp.StepCase) -> None:
    """∂ mse / ∂ variance channels = 0 exactly; ∂ mse / ∂ mean channels ≠ 0 somewhere."""
    terms, output, channels = _losses_with_grad(case)
    (grad,) = torch.autograd.grad(terms["mse"].sum(), output)
    assert torch.count_nonzero(grad[:, channels:]) == 0
    assert torch.count_nonzero(grad[:, :channels]) > 0


@given(case=hybrid_cases(("KL", "RESCALED_KL")))
def test_pure_vlb_loss_reaches_the_mean_channels(case: sp.StepCase) -> None:
    """With L_vlb alone (KL) the bound trains the mean too: at t > 0 without clipping its gradient is ≠ 0."""
    assume(all(step > 0 for step in case.t))
    terms, output, channels = _losses_with_grad(case)
    (grad,) = torch.autograd.grad(terms["loss"].sum(), output)
    assert np.isfinite(grad.numpy()).all()
    assert torch.count_nonzero(grad[:, :channels]) > 0
