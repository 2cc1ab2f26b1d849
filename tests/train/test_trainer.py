"""The training loop: microbatching, exact resume, precision, clipping, stopping, loss-aware sampling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from impl.runtime.seeding import global_batch_indices
from impl.train import InMemoryData, TrainConfig, Trainer, load_training_checkpoint
from testing.assertions import assert_close
from testing.tolerances import Train, tolerance
from tests.train.toys import TinyMLP, ToyDiffusion, toy_data


def make_trainer(run_dir: Path | None = None, *, seed: int = 0, dropout: float = 0.0, **cfg: Any) -> Trainer:
    base: dict[str, Any] = {
        "batch_size": 8,
        "max_steps": 20,
        "lr_anneal_steps": 20,
        "log_interval": 5,
        "save_interval": 0,
        "progress": False,
        "num_grid_samples": 0,
        "seed": seed,
    }
    base.update(cfg)
    torch.manual_seed(seed)
    model = TinyMLP((1, 4, 4), dropout=dropout)
    return Trainer(
        model=model, diffusion=ToyDiffusion(), data=toy_data(), config=TrainConfig(**base), run_dir=run_dir
    )


def grads(trainer: Trainer) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in trainer.model.parameters() if p.grad is not None]


def test_microbatch_gradients_average_to_the_full_batch_gradient() -> None:
    full = make_trainer(lr=0.0, grad_clip=0.0)
    full.train_step()
    micro = make_trainer(lr=0.0, grad_clip=0.0, microbatch=3)  # 3 + 3 + 2: unequal shares
    micro.train_step()
    tol = tolerance(Train.MICROBATCH_GRAD)
    for g_full, g_micro in zip(grads(full), grads(micro), strict=True):
        assert g_full.abs().max() > 1e-3  # a real gradient, not zeros
        assert_close(g_micro, g_full, tol=tol)


def test_microbatch_tolerance_separates_other_batches() -> None:
    """The check above can fail: the same weights on another batch give gradients far outside it."""
    full = make_trainer(lr=0.0, grad_clip=0.0)
    full.train_step()
    other = make_trainer(lr=0.0, grad_clip=0.0, seed=1)
    other.model.load_state_dict(full.model.state_dict())
    other.train_step()
    tol = tolerance(Train.MICROBATCH_GRAD)
    pairs = zip(grads(full), grads(other), strict=True)
    assert not all(torch.allclose(a, b, rtol=tol.rtol, atol=tol.atol) for a, b in pairs)


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = load_training_checkpoint(run_dir)
    out = dict(ckpt.model)
    for rate, state in ckpt.emas.items():
        out.update({f"ema{rate}.{k}": v for k, v in state.items()})
    assert ckpt.optimizer is not None
    for idx, per_param in ckpt.optimizer["state"].items():
        out.update({f"opt.{idx}.{k}": v for k, v in per_param.items() if isinstance(v, torch.Tensor)})
    return out


def test_ten_steps_resume_ten_steps_equals_twenty_bit_for_bit(tmp_path: Path) -> None:
    straight = make_trainer(tmp_path / "a", dropout=0.2, ema_rate="0.9,0.5", max_steps=20)
    straight.run()

    first = make_trainer(tmp_path / "b", dropout=0.2, ema_rate="0.9,0.5", max_steps=10)
    first.run()
    second = make_trainer(tmp_path / "b", dropout=0.2, ema_rate="0.9,0.5", max_steps=20, seed=0)
    torch.manual_seed(1234)  # scramble the global RNG: resume must restore what matters
    second.load(load_training_checkpoint(tmp_path / "b"))
    assert second.step == 10
    second.run()

    a, b = _final_state(tmp_path / "a"), _final_state(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [5, 10, 15, 20]


def test_resume_is_not_trivially_equal(tmp_path: Path) -> None:
    """Without restoring the checkpoint the continuation differs, so the equality above means something."""
    straight = make_trainer(tmp_path / "a", dropout=0.2, max_steps=20)
    straight.run()
    fresh = make_trainer(tmp_path / "c", dropout=0.2, max_steps=20)
    fresh.step = 10
    fresh.run()
    key = "net.0.weight"
    assert not torch.equal(_final_state(tmp_path / "a")[key], _final_state(tmp_path / "c")[key])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_runs_and_learns_something(precision: str) -> None:
    trainer = make_trainer(precision=precision, max_steps=30, lr=1e-2, log_interval=30)
    result = trainer.run()
    assert np.isfinite(result.last_log["loss"])
    assert result.last_log["loss"] < 1.0  # untrained ε-prediction of unit-variance noise has loss ~ 1


def test_fp16_skips_a_non_finite_step_and_lowers_the_scale() -> None:
    trainer = make_trainer(precision="fp16", lr=1e-2)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    rate = trainer.ema.rates[0]
    ema_before = [s.clone() for s in trainer.ema.shadows[rate]]
    scaler = trainer.policy.scaler
    assert scaler is not None
    scale_before = scaler.get_scale()

    original = trainer.diffusion.training_losses

    def poisoned(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        out = original(*args, **kwargs)
        return {**out, "loss": out["loss"] * float("inf")}

    trainer.diffusion.training_losses = poisoned  # type: ignore[method-assign]
    trainer.train_step()
    assert scaler.get_scale() < scale_before
    assert trainer._skipped == 1
    for a, b in zip(before, trainer.model.parameters(), strict=True):
        assert torch.equal(a, b.detach())
    for a, b in zip(ema_before, trainer.ema.shadows[rate], strict=True):
        assert torch.equal(a, b)


def test_gradient_clipping_bounds_the_norm() -> None:
    trainer = make_trainer(grad_clip=1e-3, lr=0.0)
    trainer.train_step()
    norm = torch.nn.utils.get_total_norm(grads(trainer))
    assert float(norm) == pytest.approx(1e-3, rel=1e-4)
    record = trainer.metrics.reduce_and_reset(trainer.ctx)
    assert record["grad_norm"] > 1e-2  # the logged norm is the one before clipping


def test_stop_request_saves_and_exits(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, max_steps=100)
    trainer.should_stop = lambda: trainer.step >= 7
    result = trainer.run()
    assert result.stopped_early and result.step == 7
    assert load_training_checkpoint(tmp_path).step == 7


def test_class_conditional_batches_pass_labels(tmp_path: Path) -> None:
    torch.manual_seed(0)
    seen: list[torch.Tensor] = []

    class Spy(TinyMLP):
        def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
            assert y is not None
            seen.append(y)
            return super().forward(x, t, y)

    data = toy_data(labels=True)
    cfg = TrainConfig(batch_size=6, max_steps=2, progress=False, num_grid_samples=6, save_interval=0)
    trainer = Trainer(
        model=Spy((1, 4, 4), num_classes=3),
        diffusion=ToyDiffusion(),
        data=data,
        config=cfg,
        run_dir=tmp_path,
        class_cond=True,
        num_classes=3,
    )
    trainer.run()
    assert data.labels is not None
    assert torch.equal(seen[0], data.labels[global_batch_indices(0, 0, len(data), 6)])
    assert (tmp_path / "samples" / "step_0000002.png").is_file()


class RecordingSampler:
    """A loss-aware stand-in: non-uniform weights, records what it is fed."""

    def __init__(self, num_timesteps: int) -> None:
        self.p = np.linspace(1.0, 3.0, num_timesteps)
        self.fed: list[tuple[list[int], list[float]]] = []
        self._loss_history = np.zeros((num_timesteps, 10))
        self._loss_counts = np.zeros(num_timesteps, dtype=np.int64)

    def weights(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        return self.p

    def sample(self, batch_size: int, device: torch.device) -> None:
        raise AssertionError("must not be called: it would use an unseeded RNG")

    def update_with_all_losses(self, ts: torch.Tensor, losses: torch.Tensor) -> None:
        self.fed.append((ts.tolist(), losses.tolist()))
        for t in ts.tolist():
            self._loss_counts[t] += 1


def test_loss_aware_sampler_is_fed_every_step_and_checkpointed(tmp_path: Path) -> None:
    torch.manual_seed(0)
    sampler = RecordingSampler(20)
    cfg = TrainConfig(
        batch_size=8,
        max_steps=3,
        progress=False,
        num_grid_samples=0,
        save_interval=0,
        schedule_sampler="loss-second-moment",
    )
    trainer = Trainer(
        model=TinyMLP((1, 4, 4)),
        diffusion=ToyDiffusion(),
        data=toy_data(),
        config=cfg,
        run_dir=tmp_path,
        schedule_sampler=sampler,
    )
    trainer.run()
    assert len(sampler.fed) == 3 and all(len(ts) == 8 for ts, _ in sampler.fed)
    saved = load_file(str(tmp_path / "checkpoints" / "step_0000003" / "sampler.safetensors"))
    assert int(saved["_loss_counts"].sum()) == 24
    restored = RecordingSampler(20)
    again = Trainer(
        model=TinyMLP((1, 4, 4)),
        diffusion=ToyDiffusion(),
        data=toy_data(),
        config=cfg,
        schedule_sampler=restored,
    )
    again.load(load_training_checkpoint(tmp_path))
    assert np.array_equal(restored._loss_counts, sampler._loss_counts)


def test_importance_weights_follow_the_sampler_distribution() -> None:
    from impl.train.timestep_sampling import draw_timesteps

    probs = np.array([0.1, 0.2, 0.7])

    class WeightsOnly:  # the original sampler API: weights() and a sample() without generator
        def weights(self) -> np.ndarray[Any, np.dtype[np.float64]]:
            return probs * 5.0

        def sample(self, batch_size: int, device: torch.device) -> None:
            raise AssertionError("must not be called: it would use an unseeded RNG")

    gen = torch.Generator().manual_seed(0)
    t, w = draw_timesteps(WeightsOnly(), 3, 20000, gen, torch.device("cpu"))
    freq = np.bincount(t.numpy(), minlength=3) / 20000
    # binomial standard error sqrt(p(1-p)/n) <= 0.0035: 5 sigma
    np.testing.assert_allclose(freq, probs, atol=5 * 0.0035)
    np.testing.assert_allclose(w.numpy(), 1.0 / (3 * probs[t.numpy()]), rtol=1e-6)


def test_data_batches_convert_uint8_to_model_range() -> None:
    data = InMemoryData(torch.tensor([[[[0, 255]]], [[[128, 64]]]], dtype=torch.uint8))
    x, y = data.batch(torch.tensor([1, 0]), torch.device("cpu"))
    assert y is None
    tol = tolerance(Train.UINT8_TO_MODEL_RANGE)
    expected = [128 / 127.5 - 1, 64 / 127.5 - 1, -1.0, 1.0]
    assert_close(x.flatten(), expected, tol=tol)
