"""LR schedules (constant / linear / cosine, linear warm-up) and the EMA warm-up: values, errors, resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from impl.train import EMA, TrainConfig, annealed_lr, load_training_checkpoint
from impl.train.ema import warmup_decay
from impl.train.lr import scheduled_lr
from tests.train.test_trainer import _final_state, make_trainer


def test_warmup_rises_linearly_from_zero() -> None:
    for schedule in ("constant", "linear", "cosine"):
        lrs = [scheduled_lr(1.0, s, schedule=schedule, horizon=100, warmup_steps=4) for s in range(5)]
        assert lrs == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_cosine_reaches_half_at_mid_decay_and_zero_at_the_horizon() -> None:
    # decay runs over [warmup, horizon] = [10, 110]: midpoint at 60
    assert scheduled_lr(2.0, 60, schedule="cosine", horizon=110, warmup_steps=10) == pytest.approx(1.0)
    assert scheduled_lr(2.0, 110, schedule="cosine", horizon=110, warmup_steps=10) == pytest.approx(0.0)
    assert scheduled_lr(2.0, 500, schedule="cosine", horizon=110, warmup_steps=10) == pytest.approx(0.0)
    q = scheduled_lr(2.0, 35, schedule="cosine", horizon=110, warmup_steps=10)  # a quarter of the way
    assert q == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_linear_after_warmup_and_constant() -> None:
    assert scheduled_lr(1.0, 55, schedule="linear", horizon=100, warmup_steps=10) == pytest.approx(0.5)
    assert scheduled_lr(1.0, 10**6, schedule="constant", horizon=100, warmup_steps=10) == 1.0


def test_linear_without_warmup_is_todays_lr_anneal_steps_bit_for_bit() -> None:
    for step in range(0, 130, 7):
        for horizon in (0, 1, 37, 100):
            got = scheduled_lr(3e-4, step, schedule="linear", horizon=horizon)
            assert got == annealed_lr(3e-4, step, horizon)
            want = 3e-4 if horizon == 0 else 3e-4 * max(0.0, 1.0 - step / horizon)
            assert got == want


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"schedule": "step"}, "lr_schedule must be one of constant, linear, cosine"),
        ({"schedule": "cosine", "horizon": 0}, "lr_anneal_steps > 0"),
        ({"schedule": "linear", "horizon": 10, "warmup_steps": 10}, "lr_warmup_steps 10 must be below"),
        ({"schedule": "linear", "horizon": 10, "warmup_steps": -1}, "lr_warmup_steps must be an integer"),
    ],
)
def test_bad_schedules_name_the_flag(kwargs: dict[str, object], needle: str) -> None:
    args = {"schedule": "linear", "horizon": 100, "warmup_steps": 0, **kwargs}
    with pytest.raises(ValueError, match=needle):
        scheduled_lr(1.0, 0, **args)  # type: ignore[arg-type]


def test_config_refuses_a_warmup_beyond_the_run() -> None:
    with pytest.raises(ValueError, match="lr_warmup_steps 30 is beyond the run"):
        TrainConfig(max_steps=20, lr_anneal_steps=0, lr_schedule="constant", lr_warmup_steps=30).validate()
    with pytest.raises(ValueError, match="lr_warmup_steps 30 must be below the decay horizon"):
        TrainConfig(max_steps=20, lr_anneal_steps=20, lr_schedule="cosine", lr_warmup_steps=30).validate()


def test_ema_warmup_decay_closed_forms() -> None:
    # power 1, inv_gamma 1: decay = 1 - 1/(1 + step) = step/(1 + step)
    assert [warmup_decay(0.9999, s, inv_gamma=1.0, power=1.0) for s in (0, 1, 3, 9)] == pytest.approx(
        [0.0, 0.5, 0.75, 0.9]
    )
    assert warmup_decay(0.6, 9, inv_gamma=1.0, power=1.0) == 0.6  # capped at the rate
    # inv_gamma 10 stretches time: step 10 here is step 1 above
    assert warmup_decay(0.9999, 10, inv_gamma=10.0, power=1.0) == pytest.approx(0.5)
    # power 1/2: decay = 1 - (1 + step)^(-1/2); step 3 -> 1/2
    assert warmup_decay(0.9999, 3, inv_gamma=1.0, power=0.5) == pytest.approx(0.5)
    for bad in ({"inv_gamma": 0.0, "power": 1.0}, {"inv_gamma": 1.0, "power": -1.0}):
        with pytest.raises(ValueError, match="ema_"):
            warmup_decay(0.9, 1, **bad)


def test_ema_update_with_a_decay_map_is_a_lerp_by_that_decay() -> None:
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, (0.9999, 0.5))
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(list(model.parameters()), {0.9999: 0.25, 0.5: 0.0})
    for s0, shadow_a, shadow_b, p in zip(
        start, ema.shadows[0.9999], ema.shadows[0.5], model.parameters(), strict=True
    ):
        torch.testing.assert_close(shadow_a, 0.25 * s0 + 0.75 * p.detach(), rtol=1e-6, atol=1e-6)
        assert torch.equal(shadow_b, p.detach())  # decay 0: a copy


SCHEDULE = {
    "lr_schedule": "cosine",
    "lr_warmup_steps": 6,
    "lr_anneal_steps": 20,
    "ema_warmup": True,
    "ema_inv_gamma": 2.0,
    "ema_power": 0.75,
    "ema_rate": "0.99,0.5",
    "dropout": 0.2,
}


def test_resume_through_warmup_and_decay_is_bit_for_bit(tmp_path: Path) -> None:
    straight = make_trainer(tmp_path / "a", max_steps=20, **SCHEDULE)  # type: ignore[arg-type]
    straight.run()
    first = make_trainer(tmp_path / "b", max_steps=4, **SCHEDULE)  # type: ignore[arg-type]
    first.run()  # stops inside the warm-up
    second = make_trainer(tmp_path / "b", max_steps=13, **SCHEDULE)  # type: ignore[arg-type]
    torch.manual_seed(99)
    second.load(load_training_checkpoint(tmp_path / "b"))
    second.run()  # stops inside the cosine decay
    third = make_trainer(tmp_path / "b", max_steps=20, **SCHEDULE)  # type: ignore[arg-type]
    third.load(load_training_checkpoint(tmp_path / "b"))
    third.run()
    a, b = _final_state(tmp_path / "a"), _final_state(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_schedules_change_the_training(tmp_path: Path) -> None:
    """The switches are live: the same run with the default linear LR and fixed EMA ends elsewhere."""
    scheduled = make_trainer(tmp_path / "a", max_steps=8, **SCHEDULE)  # type: ignore[arg-type]
    scheduled.run()
    plain = make_trainer(tmp_path / "c", max_steps=8, dropout=0.2, ema_rate="0.99,0.5")
    plain.run()
    a, c = _final_state(tmp_path / "a"), _final_state(tmp_path / "c")
    assert not torch.equal(a["net.0.weight"], c["net.0.weight"])
    assert not torch.equal(a["ema0.99.net.0.weight"], c["ema0.99.net.0.weight"])
