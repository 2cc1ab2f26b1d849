"""EMA update rule, LR schedule, configuration validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from impl.train import EMA, TrainConfig, annealed_lr, parse_ema_rates
from testing.assertions import assert_close
from testing.tolerances import Train, tolerance


def test_ema_update_matches_the_formula_for_each_rate() -> None:
    gen = torch.Generator().manual_seed(0)
    model = nn.Linear(5, 3)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1, 1, generator=gen)
    ema = EMA(model, (0.9, 0.5))
    start = [p.detach().double().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1, 1, generator=gen)
    ema.update([p.detach() for p in model.parameters()])
    tol = tolerance(Train.EMA_UPDATE)
    for rate in (0.9, 0.5):
        for s0, p, shadow in zip(start, model.parameters(), ema.shadows[rate], strict=True):
            expected = rate * s0 + (1 - rate) * p.detach().double()
            assert_close(shadow.double(), expected, tol=tol, label=f"rate {rate}")


def test_ema_state_dict_round_trip() -> None:
    model = nn.Linear(2, 2)
    ema = EMA(model, (0.99,))
    state = {k: v + 1 for k, v in ema.state_dict(model, 0.99).items()}
    ema.load_state_dict(0.99, state)
    assert torch.equal(ema.shadows[0.99][0], model.weight.detach() + 1)
    with pytest.raises(ValueError, match="shape"):
        ema.load_state_dict(0.99, {"weight": torch.zeros(3, 3), "bias": torch.zeros(2)})


def test_linear_anneal_reaches_zero_and_zero_horizon_is_constant() -> None:
    assert annealed_lr(1e-3, 0, 100) == 1e-3
    assert annealed_lr(1e-3, 50, 100) == pytest.approx(5e-4)
    assert annealed_lr(1e-3, 100, 100) == 0.0
    assert annealed_lr(1e-3, 150, 100) == 0.0
    assert annealed_lr(1e-3, 10**6, 0) == 1e-3


@pytest.mark.parametrize(
    ("spec", "match"),
    [("", "at least one"), ("0.9,abc", "comma-separated"), ("1.0", r"\[0, 1\)"), ("0.9,0.9", "twice")],
)
def test_bad_ema_rates_are_named(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_ema_rates(spec)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 6}, "divisible"),
        ({"microbatch": 9}, "microbatch"),
        ({"precision": "fp8"}, "precision"),
        ({"schedule_sampler": "foo"}, "schedule_sampler"),
        ({"lr": float("nan")}, "lr"),
        ({"lr_anneal_steps": -1}, "lr_anneal_steps"),
        ({"grad_clip": -1.0}, "grad_clip"),
    ],
)
def test_config_validation_names_the_field(changes: dict[str, object], match: str) -> None:
    cfg = TrainConfig(**{"batch_size": 8, **changes})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        cfg.validate(world_size=4)


def test_config_dict_round_trip_and_unknown_keys() -> None:
    cfg = TrainConfig(lr=3e-4, model_flags={"image_size": 8})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown training config keys"):
        TrainConfig.from_dict({**cfg.to_dict(), "bogus": 1})
