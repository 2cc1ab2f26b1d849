"""reference: the float64 NumPy oracle, one function per SPEC equation."""

from __future__ import annotations

from reference.gaussian import approx_standard_normal_cdf, discretized_gaussian_log_likelihood, normal_kl
from reference.objectives import full_bound_bpd, prior_bpd, training_losses, vb_term_bpd
from reference.process import (
    model_variance,
    p_mean_variance,
    predict_eps_from_xstart,
    predict_xstart_from_eps,
    predict_xstart_from_xprev,
    q_mean_variance,
    q_posterior_mean_variance,
    q_sample,
)
from reference.respacing import model_timesteps, respaced_betas, space_timesteps
from reference.schedule import (
    DiffusionTables,
    betas_for_alpha_bar,
    cosine_alpha_bar,
    diffusion_tables,
    get_named_beta_schedule,
    linear_beta_schedule,
)
from reference.steps import condition_mean, condition_score, ddim_reverse_step, ddim_step, p_sample_step
from reference.timesteps import (
    importance_weights,
    loss_second_moment_probs,
    sample_timesteps,
    uniform_timestep_probs,
    update_loss_history,
)

__all__ = [
    "DiffusionTables",
    "approx_standard_normal_cdf",
    "betas_for_alpha_bar",
    "condition_mean",
    "condition_score",
    "cosine_alpha_bar",
    "ddim_reverse_step",
    "ddim_step",
    "diffusion_tables",
    "discretized_gaussian_log_likelihood",
    "full_bound_bpd",
    "get_named_beta_schedule",
    "importance_weights",
    "linear_beta_schedule",
    "loss_second_moment_probs",
    "model_timesteps",
    "model_variance",
    "normal_kl",
    "p_mean_variance",
    "p_sample_step",
    "predict_eps_from_xstart",
    "predict_xstart_from_eps",
    "predict_xstart_from_xprev",
    "prior_bpd",
    "q_mean_variance",
    "q_posterior_mean_variance",
    "q_sample",
    "respaced_betas",
    "sample_timesteps",
    "space_timesteps",
    "training_losses",
    "uniform_timestep_probs",
    "update_loss_history",
    "vb_term_bpd",
]
