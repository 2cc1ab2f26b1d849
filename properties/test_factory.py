"""create_gaussian_diffusion maps the original flags to the original types; enum names match reference."""

from __future__ import annotations

import itertools

import pytest

import impl
from impl.diffusion.respacing import SpacedDiffusion


@pytest.mark.parametrize(
    "use_kl, rescale_learned_sigmas, expected",
    [
        (True, False, "RESCALED_KL"),
        (True, True, "RESCALED_KL"),
        (False, True, "RESCALED_MSE"),
        (False, False, "MSE"),
    ],
)
def test_loss_type_mapping(use_kl: bool, rescale_learned_sigmas: bool, expected: str) -> None:
    """use_kl → RESCALED_KL; else rescale_learned_sigmas → RESCALED_MSE; else MSE."""
    diffusion = impl.create_gaussian_diffusion(
        steps=21, use_kl=use_kl, rescale_learned_sigmas=rescale_learned_sigmas
    )
    assert diffusion.loss_type is impl.LossType[expected]


@pytest.mark.parametrize("learn_sigma, sigma_small", list(itertools.product([False, True], repeat=2)))
def test_variance_type_mapping(learn_sigma: bool, sigma_small: bool) -> None:
    """learn_sigma → LEARNED_RANGE; else sigma_small → FIXED_SMALL; else FIXED_LARGE."""
    diffusion = impl.create_gaussian_diffusion(steps=21, learn_sigma=learn_sigma, sigma_small=sigma_small)
    expected = "LEARNED_RANGE" if learn_sigma else ("FIXED_SMALL" if sigma_small else "FIXED_LARGE")
    assert diffusion.model_var_type is impl.ModelVarType[expected]


@pytest.mark.parametrize("predict_xstart, expected", [(True, "START_X"), (False, "EPSILON")])
def test_mean_type_mapping(predict_xstart: bool, expected: str) -> None:
    """predict_xstart → START_X else EPSILON."""
    diffusion = impl.create_gaussian_diffusion(steps=21, predict_xstart=predict_xstart)
    assert diffusion.model_mean_type is impl.ModelMeanType[expected]


def test_respacing_and_schedule() -> None:
    """An empty respacing keeps every step; 'ddim10' keeps 10; the schedule and rescale flags pass through."""
    full = impl.create_gaussian_diffusion(steps=100, noise_schedule="cosine", rescale_timesteps=True)
    assert isinstance(full, SpacedDiffusion)
    assert full.num_timesteps == 100 and full.timestep_map == list(range(100))
    assert full.rescale_timesteps
    direct = SpacedDiffusion(
        use_timesteps=range(100),
        betas=impl.get_named_beta_schedule("cosine", 100),
        model_mean_type=impl.ModelMeanType.EPSILON,
        model_var_type=impl.ModelVarType.FIXED_LARGE,
        loss_type=impl.LossType.MSE,
    )
    assert (full.betas == direct.betas).all()  # the same deterministic computation from the cosine schedule
    assert not (impl.create_gaussian_diffusion(steps=100).betas == full.betas).all()  # linear differs
    spaced = impl.create_gaussian_diffusion(steps=100, timestep_respacing="ddim10")
    assert spaced.num_timesteps == 10 and spaced.original_num_steps == 100
    assert spaced.timestep_map == list(range(0, 100, 10))


def test_bad_names_raise_value_errors() -> None:
    """Unknown schedule names and linear schedules with T <= 20 are rejected with a clear ValueError."""
    with pytest.raises(ValueError, match="schedule_name"):
        impl.get_named_beta_schedule("quadratic", 20)
    with pytest.raises(ValueError, match="noise_schedule"):
        impl.create_gaussian_diffusion(steps=20, noise_schedule="quadratic")
    with pytest.raises(ValueError, match="num_diffusion_timesteps"):
        impl.create_gaussian_diffusion(steps=10)
    with pytest.raises(ValueError, match="T >= 21"):
        impl.create_gaussian_diffusion(steps=20)


def test_enum_names_match_the_reference_strings() -> None:
    """impl enums carry exactly the member names the reference uses as strings (docs/contracts.md)."""
    assert [m.name for m in impl.ModelMeanType] == ["PREVIOUS_X", "START_X", "EPSILON", "VELOCITY"]
    assert [m.name for m in impl.ModelVarType] == ["LEARNED", "FIXED_SMALL", "FIXED_LARGE", "LEARNED_RANGE"]
    assert [m.name for m in impl.LossType] == ["MSE", "RESCALED_MSE", "KL", "RESCALED_KL"]


def test_is_vb() -> None:
    """LossType.is_vb is true exactly for KL and RESCALED_KL."""
    assert {m.name for m in impl.LossType if m.is_vb()} == {"KL", "RESCALED_KL"}


def test_unknown_noise_schedule_names_the_flag() -> None:
    """The error names `noise_schedule` (the flag users type) and the allowed values."""
    with pytest.raises(ValueError, match=r"^noise_schedule must be one of \('linear', 'cosine'\), got 'foo'"):
        impl.create_gaussian_diffusion(steps=10, noise_schedule="foo")
