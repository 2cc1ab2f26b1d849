"""Timestep samplers [S24]–[S26]: unbiased importance weights, frequencies that follow `weights()`,
the no-host-sync update and the name factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def test_update_loss_history_traces_into_one_static_graph() -> None:
    """The device-side history update has no data-dependent shape: `torch.compile(fullgraph=True)` traces
    it into one graph whose every intermediate has a static shape (bincount gave an unbacked size, which
    blocks CUDA-graph capture), `torch._dynamo.explain` finds no graph break, and the compiled update
    equals the eager one exactly, including padding pairs and timesteps that overflow within one call."""
    from impl.diffusion.timesteps import update_loss_history

    graphs: list[torch.fx.GraphModule] = []

    def recording_backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., Any]:
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(update_loss_history, fullgraph=True, backend=recording_backend, dynamic=False)
    history = torch.zeros((5, 3), dtype=torch.float64)
    counts = torch.zeros((5,), dtype=torch.long)
    eager_history, eager_counts = history, counts
    rng = np.random.default_rng(3)
    for _ in range(4):
        t = torch.tensor(rng.integers(0, 5, size=8))
        losses = torch.tensor(rng.uniform(0.0, 2.0, size=8))
        valid = torch.tensor(rng.uniform(size=8) < 0.8)
        history, counts = compiled(history, counts, t, losses, valid)
        eager_history, eager_counts = update_loss_history(eager_history, eager_counts, t, losses, valid)
        assert torch.equal(history, eager_history) and torch.equal(counts, eager_counts)
    assert len(graphs) == 1
    symbolic = [
        (node.name, tuple(value.shape))
        for node in graphs[0].graph.nodes
        if isinstance(value := node.meta.get("example_value"), torch.Tensor)
        and not all(isinstance(size, int) for size in value.shape)
    ]
    assert not symbolic, symbolic
    explanation = torch._dynamo.explain(update_loss_history)(history, counts, t, losses, valid)
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_loss_second_moment_state_round_trips_and_rejects_a_mismatched_history() -> None:
    """A restored sampler has the same history, counts and so the same weights; a history of another T is
    refused with the argument named."""
    diffusion = impl.create_gaussian_diffusion(steps=10, noise_schedule="cosine")
    sampler = impl.LossSecondMomentResampler(diffusion, history_per_term=2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        t = torch.randint(0, 10, (8,), generator=gen)
        sampler.update_with_all_losses(t, torch.rand(8, generator=gen, dtype=torch.float64))
    restored = impl.LossSecondMomentResampler(diffusion, history_per_term=2)
    restored.load_state_dict(sampler.state_dict())
    assert torch.equal(restored.state_dict()["loss_history"], sampler.state_dict()["loss_history"])
    assert torch.equal(restored.state_dict()["loss_counts"], sampler.state_dict()["loss_counts"])
    assert (restored.weights() == sampler.weights()).all()
    longer = impl.create_gaussian_diffusion(steps=20, noise_schedule="cosine")
    other = impl.LossSecondMomentResampler(longer, history_per_term=2)
    with pytest.raises(ValueError, match="loss_history"):
        other.load_state_dict(sampler.state_dict())
