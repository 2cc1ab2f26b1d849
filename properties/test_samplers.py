"""Timestep samplers [S24]–[S26]: unbiased importance weights, frequencies that follow `weights()`,
the no-host-sync update and the name factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import impl
from properties import strategies as sp
from properties.marshal import impl_diffusion

# A false alarm (rejecting a correct sampler) happens with this probability per test; the draws use a
# fixed seed, so the outcome is reproducible.
FALSE_ALARM_RATE = 1e-3
DRAWS = 20_000


def _warmed_up_sampler(steps: int = 6) -> impl.LossSecondMomentResampler:
    spec = sp.ProcessSpec("cosine", steps, None, "EPSILON", "FIXED_SMALL", "MSE", False)
    sampler = impl.LossSecondMomentResampler(impl_diffusion(spec), history_per_term=4, uniform_prob=0.05)
    rng = np.random.default_rng(1)
    for _ in range(4):
        t = torch.arange(steps)
        losses = torch.tensor((1.0 + np.arange(steps)) ** 2 * rng.uniform(0.5, 1.5, steps))
        sampler.update_with_local_losses(t, losses)
    assert sampler._warmed_up()
    return sampler


def test_frequencies_follow_weights_chi_square() -> None:
    """Counts of `sample` match weights()/Σweights: a chi-square test at the stated false-alarm rate."""
    sampler = _warmed_up_sampler()
    p = sampler.weights() / sampler.weights().sum()
    t, _ = sampler.sample(DRAWS, "cpu", generator=torch.Generator().manual_seed(123))
    counts = np.bincount(t.numpy(), minlength=p.shape[0])
    result = stats.chisquare(counts, DRAWS * p)
    assert result.pvalue > FALSE_ALARM_RATE, (counts, DRAWS * p)


def test_importance_weighting_is_unbiased() -> None:
    """E_p[w_t·L_t] = mean_t L_t [S24]: exactly over the distribution, and within 4.5σ by Monte Carlo."""
    sampler = _warmed_up_sampler()
    steps = sampler.diffusion.num_timesteps
    losses = np.linspace(0.2, 3.0, steps) ** 2
    p = sampler.weights() / sampler.weights().sum()
    exact = float(np.sum(p * (1.0 / (steps * p)) * losses))
    assert abs(exact - losses.mean()) <= 8 * np.finfo(np.float64).eps * losses.sum()
    t, w = sampler.sample(DRAWS, "cpu", generator=torch.Generator().manual_seed(7))
    weighted = w.double().numpy() * losses[t.numpy()]
    standard_error = weighted.std(ddof=1) / np.sqrt(DRAWS)
    # |z| > 4.5 has probability 7e-6 under the null: below the false-alarm rate, with a fixed seed.
    assert abs(weighted.mean() - losses.mean()) <= 4.5 * standard_error


def test_uniform_sampler_weights_are_one() -> None:
    """UniformSampler: p_t = 1/T and every importance weight is exactly 1 [S25]."""
    spec = sp.ProcessSpec("cosine", 10, None, "EPSILON", "FIXED_SMALL", "MSE", False)
    sampler = impl.create_named_schedule_sampler("uniform", impl_diffusion(spec))
    assert isinstance(sampler, impl.UniformSampler)
    t, w = sampler.sample(64, "cpu", generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and w.dtype == torch.float32
    assert bool((w == 1.0).all()) and int(t.min()) >= 0 and int(t.max()) < 10


def test_named_samplers_and_unknown_name() -> None:
    """The two original names map to their classes; anything else is a ValueError naming the choices."""
    spec = sp.ProcessSpec("cosine", 10, None, "EPSILON", "FIXED_SMALL", "MSE", False)
    diffusion = impl_diffusion(spec)
    assert isinstance(
        impl.create_named_schedule_sampler("loss-second-moment", diffusion), impl.LossSecondMomentResampler
    )
    with pytest.raises(ValueError, match="loss-second-moment"):
        impl.create_named_schedule_sampler("importance", diffusion)


def test_update_with_local_losses_never_reads_values_on_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The single-process update is vectorised: no .item(), .tolist() or .numpy() on the way."""
    sampler = _warmed_up_sampler()

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("host synchronisation inside update_with_local_losses")

    monkeypatch.setattr(torch.Tensor, "item", forbidden)
    monkeypatch.setattr(torch.Tensor, "tolist", forbidden)
    monkeypatch.setattr(torch.Tensor, "numpy", forbidden)
    sampler.update_with_local_losses(torch.tensor([0, 3, 3, 5]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    sampler.sample(8, "cpu")
