"""Divergence is detected (issue 12, item 1): no save and no pruning for a non-finite state, a non-zero exit
naming the step and the last good checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from impl.cli import main
from impl.train import TrainConfig, Trainer, load_training_checkpoint
from impl.train.checkpoint import list_checkpoints
from impl.train.divergence import DivergenceError
from tests.cli.tiny import tiny_train
from tests.train.toys import TinyMLP, ToyDiffusion, toy_data


def toy_trainer(run_dir: Path | None, **cfg: Any) -> Trainer:
    base: dict[str, Any] = {
        "batch_size": 8,
        "max_steps": 20,
        "lr_anneal_steps": 20,
        "log_interval": 100,
        "save_interval": 2,
        "keep_checkpoints": 1,
        "progress": False,
        "num_grid_samples": 0,
    }
    base.update(cfg)
    torch.manual_seed(0)
    return Trainer(
        model=TinyMLP((1, 4, 4)),
        diffusion=ToyDiffusion(),
        data=toy_data(),
        config=TrainConfig(**base),
        run_dir=run_dir,
    )


def poison(trainer: Trainer, steps: set[int], value: float = float("nan")) -> None:
    """Multiply the loss of the updates from the given steps by ``value`` (NaN or inf)."""
    original = trainer.diffusion.training_losses

    def poisoned(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        out = original(*args, **kwargs)
        return {**out, "loss": out["loss"] * value} if trainer.step in steps else out

    trainer.diffusion.training_losses = poisoned  # type: ignore[method-assign]


def all_finite(folder: Path) -> bool:
    ckpt = load_training_checkpoint(folder)
    tensors = [*ckpt.model.values(), *(v for ema in ckpt.emas.values() for v in ema.values())]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def test_fp32_stops_before_saving_or_pruning_a_nan_state(tmp_path: Path) -> None:
    trainer = toy_trainer(tmp_path)
    poison(trainer, {5})  # the update to step 6, between the saves of steps 4 and 6
    with pytest.raises(DivergenceError) as err:
        trainer.run()
    message = str(err.value)
    assert "update to step 6" in message
    assert str(tmp_path / "checkpoints" / "step_0000004") in message
    assert [step for step, _ in list_checkpoints(tmp_path / "checkpoints")] == [4]  # not pruned, no step 6
    assert load_training_checkpoint(tmp_path).step == 4 and all_finite(tmp_path)


def test_a_non_finite_loss_is_caught_at_the_next_log_without_a_save(tmp_path: Path) -> None:
    trainer = toy_trainer(tmp_path, save_interval=0, log_interval=3)
    poison(trainer, {1}, float("inf"))
    with pytest.raises(DivergenceError, match=r"update to step 2.*no checkpoint of this run was saved"):
        trainer.run()
    assert trainer.step == 3  # stopped at the first log after it, not at max_steps
    assert not (tmp_path / "checkpoints").exists()


def test_fp16_stops_after_more_than_max_nonfinite_steps_skipped_in_a_row(tmp_path: Path) -> None:
    trainer = toy_trainer(tmp_path, precision="fp16", log_interval=1, save_interval=0, max_nonfinite_steps=3)
    poison(trainer, {3, 4, 5, 6, 7, 8}, float("inf"))
    with pytest.raises(DivergenceError, match=r"more than --max_nonfinite_steps 3 .*update to step 7"):
        trainer.run()
    assert not (tmp_path / "checkpoints").exists()


def test_fp16_tolerates_max_nonfinite_steps_skipped_in_a_row(tmp_path: Path) -> None:
    trainer = toy_trainer(tmp_path, precision="fp16", log_interval=1, save_interval=0, max_nonfinite_steps=3)
    poison(trainer, {3, 4, 5, 10, 11, 12}, float("inf"))  # two streaks of 3, each within the limit
    result = trainer.run()
    assert result.step == 20 and trainer._skipped == 6
    assert load_training_checkpoint(tmp_path).step == 20


def test_the_cli_exits_1_naming_the_step_and_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's own reproduction: ``--lr 10000 --grad_clip 0`` with pruning."""
    run = tmp_path / "run"
    extra = ["--lr", "10000", "--grad_clip", "0", "--max_steps", "12", "--save_interval", "1"]
    code = main(tiny_train(str(run), *extra, "--keep_checkpoints", "1", "--log_interval", "1"))
    err = capsys.readouterr().err
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err
    assert "training diverged" in lines[0] and "update to step" in lines[0]
    saved = list_checkpoints(run / "checkpoints")
    assert len(saved) == 1 and str(saved[0][1]) in lines[0]
    assert all_finite(run)
