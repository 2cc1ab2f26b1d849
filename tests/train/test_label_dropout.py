"""Label dropout in the trainer [S51]: labels become the null label at rate p, drawn from the step's
seeded generator (so resume is bit for bit), and p = 0 trains exactly as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from impl.runtime.seeding import global_batch_indices
from impl.train import TrainConfig, Trainer, load_training_checkpoint
from tests.train.toys import TinyMLP, ToyDiffusion, toy_data

NUM_CLASSES = 3


class LabelSpy(TinyMLP):
    """TinyMLP that records the labels of every training call (the model's embedding has K + 1 rows)."""

    def __init__(self) -> None:
        super().__init__((1, 4, 4), num_classes=NUM_CLASSES + 1)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        assert y is not None
        if self.training:
            self.seen.append(y.clone())
        return super().forward(x, t, y)


def make_trainer(run_dir: Path | None = None, *, model_flags: dict[str, Any], **cfg: Any) -> Trainer:
    base: dict[str, Any] = {
        "batch_size": 6,
        "max_steps": 6,
        "log_interval": 3,
        "save_interval": 0,
        "progress": False,
        "num_grid_samples": 0,
        "seed": 0,
    }
    base.update(cfg)
    torch.manual_seed(0)
    return Trainer(
        model=LabelSpy(),
        diffusion=ToyDiffusion(),
        data=toy_data(labels=True),
        config=TrainConfig(**base, model_flags=model_flags),
        run_dir=run_dir,
        class_cond=True,
        num_classes=NUM_CLASSES,
    )


def seen(trainer: Trainer) -> list[torch.Tensor]:
    """The labels the trainer's LabelSpy was trained on, one tensor per step."""
    assert isinstance(trainer.model, LabelSpy)
    return trainer.model.seen


def _dropout_flags(p: float) -> dict[str, Any]:
    return {"class_cond": True, "num_classes": NUM_CLASSES, "class_dropout_prob": p}


def _data_labels(steps: int, batch: int) -> list[torch.Tensor]:
    data = toy_data(labels=True)
    assert data.labels is not None
    return [data.labels[global_batch_indices(0, s, len(data), batch)] for s in range(steps)]


def test_labels_are_kept_or_become_the_null_label_at_rate_p() -> None:
    trainer = make_trainer(model_flags=_dropout_flags(0.3), max_steps=40, batch_size=8)
    trainer.run()
    labels = torch.cat(seen(trainer))
    original = torch.cat(_data_labels(40, 8))
    dropped = labels == NUM_CLASSES
    assert torch.equal(labels[~dropped], original[~dropped])  # a kept label is its own label
    n, p = labels.numel(), 0.3  # 320 draws: the dropped fraction within 4 binomial standard deviations
    assert abs(dropped.float().mean().item() - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_the_drops_are_a_function_of_the_seed_and_step() -> None:
    a = make_trainer(model_flags=_dropout_flags(0.5))
    b = make_trainer(model_flags=_dropout_flags(0.5))
    a.run()
    torch.manual_seed(99)  # the global RNG plays no part
    b.run()
    assert all(torch.equal(x, y) for x, y in zip(seen(a), seen(b), strict=True))
    other = make_trainer(model_flags=_dropout_flags(0.5), seed=1)
    other.run()
    masks = [(y == NUM_CLASSES) for y in seen(a)]
    other_masks = [(y == NUM_CLASSES) for y in seen(other)]
    assert any(not torch.equal(x, y) for x, y in zip(masks, other_masks, strict=True))


def test_p_zero_trains_bit_for_bit_as_a_run_without_the_flag() -> None:
    """p = 0 draws nothing more from the step generator: weights equal a run whose flags lack the key."""
    with_zero = make_trainer(model_flags=_dropout_flags(0.0))
    without = make_trainer(model_flags={"class_cond": True, "num_classes": NUM_CLASSES})
    with_zero.run()
    without.run()
    assert all(torch.equal(y, d) for y, d in zip(seen(with_zero), _data_labels(6, 6), strict=True))
    for (name, a), b in zip(
        with_zero.model.state_dict().items(), without.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    dropping = make_trainer(model_flags=_dropout_flags(0.5))
    dropping.run()
    assert not torch.equal(
        dropping.model.state_dict()["net.0.weight"], without.model.state_dict()["net.0.weight"]
    )


def test_resume_of_a_dropout_run_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    straight = make_trainer(tmp_path / "a", model_flags=_dropout_flags(0.4), max_steps=6)
    straight.run()
    first = make_trainer(tmp_path / "b", model_flags=_dropout_flags(0.4), max_steps=3)
    first.run()
    second = make_trainer(tmp_path / "b", model_flags=_dropout_flags(0.4), max_steps=6)
    torch.manual_seed(1234)
    second.load(load_training_checkpoint(tmp_path / "b"))
    second.run()
    assert all(torch.equal(x, y) for x, y in zip(seen(straight)[3:], seen(second), strict=True))
    a, b = load_training_checkpoint(tmp_path / "a").model, load_training_checkpoint(tmp_path / "b").model
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("flags", "class_cond", "needle"),
    [
        (_dropout_flags(1.0), True, "class_dropout_prob must be a number in \\[0, 1\\)"),
        (_dropout_flags(-0.1), True, "class_dropout_prob must be a number in \\[0, 1\\)"),
        ({"class_dropout_prob": 0.2}, False, "needs a class-conditional model"),
    ],
)
def test_bad_dropout_settings_are_refused(flags: dict[str, Any], class_cond: bool, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Trainer(
            model=LabelSpy(),
            diffusion=ToyDiffusion(),
            data=toy_data(labels=True),
            config=TrainConfig(batch_size=6, max_steps=2, progress=False, model_flags=flags),
            class_cond=class_cond,
            num_classes=NUM_CLASSES,
        )
