"""`create_gaussian_diffusion`: the original's diffusion flags mapped to a (possibly respaced) diffusion."""

from __future__ import annotations

from impl.diffusion.enums import LossType, ModelMeanType, ModelVarType
from impl.diffusion.respacing import SpacedDiffusion, space_timesteps
from impl.diffusion.schedule import SCHEDULE_NAMES, get_named_beta_schedule

__all__ = ["create_gaussian_diffusion"]


def create_gaussian_diffusion(
    *,
    steps: int = 1000,
    learn_sigma: bool = False,
    sigma_small: bool = False,
    noise_schedule: str = "linear",
    use_kl: bool = False,
    predict_xstart: bool = False,
    rescale_timesteps: bool = False,
    rescale_learned_sigmas: bool = False,
    timestep_respacing: str = "",
) -> SpacedDiffusion:
    """A `SpacedDiffusion` from the original script flags (an empty respacing keeps all `steps`)."""
    if noise_schedule not in SCHEDULE_NAMES:  # named by its flag, which is what the user typed
        raise ValueError(f"noise_schedule must be one of {SCHEDULE_NAMES}, got {noise_schedule!r}")
    betas = get_named_beta_schedule(noise_schedule, steps)
    if use_kl:
        loss_type = LossType.RESCALED_KL
    elif rescale_learned_sigmas:
        loss_type = LossType.RESCALED_MSE
    else:
        loss_type = LossType.MSE
    if learn_sigma:
        var_type = ModelVarType.LEARNED_RANGE
    elif sigma_small:
        var_type = ModelVarType.FIXED_SMALL
    else:
        var_type = ModelVarType.FIXED_LARGE
    spec = timestep_respacing if timestep_respacing else [steps]
    return SpacedDiffusion(
        use_timesteps=space_timesteps(steps, spec),
        betas=betas,
        model_mean_type=ModelMeanType.START_X if predict_xstart else ModelMeanType.EPSILON,
        model_var_type=var_type,
        loss_type=loss_type,
        rescale_timesteps=rescale_timesteps,
    )
