"""impl.diffusion: schedules, the Gaussian diffusion process and its respaced form, objectives, and the
training-timestep samplers (``resample``).

The public names and signatures are those of improved-diffusion (plus `generator=` / `noise=` extensions).
``create_gaussian_diffusion`` (the original's ``script_util``) lives in ``impl.factory``, above this package.
"""

from impl.diffusion.enums import LossType, ModelMeanType, ModelVarType
from impl.diffusion.gaussian import (
    approx_standard_normal_cdf,
    discretized_gaussian_log_likelihood,
    mean_flat,
    normal_kl,
)
from impl.diffusion.gaussian_diffusion import GaussianDiffusion
from impl.diffusion.resample import (
    LossAwareSampler,
    LossSecondMomentResampler,
    ScheduleSampler,
    UniformSampler,
    create_named_schedule_sampler,
)
from impl.diffusion.respacing import SpacedDiffusion, space_timesteps
from impl.diffusion.schedule import betas_for_alpha_bar, get_named_beta_schedule

__all__: list[str] = [
    "GaussianDiffusion",
    "LossAwareSampler",
    "LossSecondMomentResampler",
    "LossType",
    "ModelMeanType",
    "ModelVarType",
    "ScheduleSampler",
    "SpacedDiffusion",
    "UniformSampler",
    "approx_standard_normal_cdf",
    "betas_for_alpha_bar",
    "create_named_schedule_sampler",
    "discretized_gaussian_log_likelihood",
    "get_named_beta_schedule",
    "mean_flat",
    "normal_kl",
    "space_timesteps",
]
