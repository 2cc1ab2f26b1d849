"""The trainer's speed switches (optimizer_impl, channels_last, allow_tf32, cudnn_benchmark) against the
plain path: same arithmetic up to the float32 budgets of testing/tolerances."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from impl.nn.unet import UNetModel
from impl.runtime.backend_flags import (
    BackendFlags,
    apply_backend_flags,
    current_backend_flags,
    set_backend_flags,
)
from impl.train import DistContext, TrainConfig, Trainer, load_training_checkpoint
from impl.train.optimizer import build_adamw
from testing.assertions import assert_close
from testing.tolerances import Train, tolerance
from tests.train.toys import TinyMLP, ToyDiffusion, toy_data

LR = 1e-3


def _trainer(
    model: nn.Module,
    shape: tuple[int, ...],
    run_dir: Path | None = None,
    *,
    ctx: DistContext | None = None,
    **cfg: Any,
) -> Trainer:
    base: dict[str, Any] = {
        "batch_size": 8,
        "max_steps": 3,
        "lr_anneal_steps": 0,
        "lr": LR,
        "progress": False,
        "num_grid_samples": 0,
        "save_interval": 0,
        "log_interval": 1,
    }
    base.update(cfg)
    return Trainer(
        model=model,
        diffusion=ToyDiffusion(),
        data=toy_data(shape=shape),
        config=TrainConfig(**base),
        run_dir=run_dir,
        ctx=ctx,
    )


def _mlp() -> TinyMLP:
    torch.manual_seed(0)
    return TinyMLP((3, 4, 4))


def _unet() -> UNetModel:
    """A 64-channel two-level U-Net (2 channels per GroupNorm group, so no bias has an analytically zero
    gradient); its zero-initialised layers get small random weights so every path carries gradient."""
    torch.manual_seed(0)
    model = UNetModel(3, 64, 3, 1, (4,), channel_mult=(1, 1))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


def _steps(trainer: Trainer, n: int) -> list[torch.Tensor]:
    for _ in range(n):
        trainer.train_step()
    return [p.detach().clone() for p in trainer.model.parameters()]


@pytest.mark.parametrize("impl", ["auto", "fused", "foreach"])
def test_optimizer_impls_match_the_for_loop_adamw(impl: str) -> None:
    tol = tolerance(Train.OPTIMIZER_IMPL_PARAMS)
    start = [p.detach().clone() for p in _mlp().parameters()]
    plain = _steps(_trainer(_mlp(), (3, 4, 4), optimizer_impl="for-loop"), 3)
    other = _steps(_trainer(_mlp(), (3, 4, 4), optimizer_impl=impl), 3)
    for p0, a, b in zip(start, plain, other, strict=True):
        assert (a - p0).abs().max() > LR  # the weights really moved
        assert_close(b, a, tol=tol)


def test_optimizer_impl_tolerance_separates_another_learning_rate() -> None:
    """The check above can fail: a 10% different lr moves the weights far outside it."""
    tol = tolerance(Train.OPTIMIZER_IMPL_PARAMS)
    plain = _steps(_trainer(_mlp(), (3, 4, 4), optimizer_impl="for-loop"), 3)
    other = _steps(_trainer(_mlp(), (3, 4, 4), optimizer_impl="fused", lr=1.1 * LR), 3)
    pairs = zip(plain, other, strict=True)
    assert not all(torch.allclose(a, b, rtol=tol.rtol, atol=tol.atol) for a, b in pairs)


def test_optimizer_impl_builds_the_asked_kernels() -> None:
    params = [nn.Parameter(torch.zeros(2))]
    cpu = torch.device("cpu")
    assert build_adamw(params, "fused", cpu, lr=LR, weight_decay=0.0).defaults["fused"] is True
    assert build_adamw(params, "foreach", cpu, lr=LR, weight_decay=0.0).defaults["foreach"] is True
    plain = build_adamw(params, "for-loop", cpu, lr=LR, weight_decay=0.0).defaults
    assert plain["foreach"] is False and not plain["fused"]
    cuda = torch.device("cuda")
    assert build_adamw(params, "auto", cuda, lr=LR, weight_decay=0.0).defaults["fused"] is True
    assert not build_adamw(params, "auto", cpu, lr=LR, weight_decay=0.0).defaults["fused"]


def test_bad_optimizer_impl_values_are_value_errors() -> None:
    with pytest.raises(ValueError, match="optimizer_impl must be one of"):
        TrainConfig(optimizer_impl="adam").validate()
    with pytest.raises(ValueError, match="optimizer_impl='fused' needs a device"):
        build_adamw([nn.Parameter(torch.zeros(2))], "fused", torch.device("meta"), lr=LR, weight_decay=0.0)
    with pytest.raises(ValueError, match="channels_last must be True or False"):
        TrainConfig(channels_last="yes").validate()  # type: ignore[arg-type]


class _LayoutProbe(nn.Module):
    """Records whether the network's input (x_t) arrives channels-last."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        out: torch.Tensor = self.conv(x)
        return out


def test_channels_last_reaches_weights_batch_and_x_t() -> None:
    probe = _LayoutProbe()
    trainer = _trainer(probe, (3, 4, 4), channels_last=True, random_flip=True, microbatch=3)
    trainer.train_step()
    assert probe.seen == [True, True, True]
    assert probe.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not probe.conv.weight.is_contiguous()
    plain = _LayoutProbe()
    _trainer(plain, (3, 4, 4)).train_step()
    assert plain.seen == [False]


def test_channels_last_unet_conv_weights_are_channels_last() -> None:
    trainer = _trainer(_unet(), (3, 8, 8), channels_last=True)
    convs = [p for p in trainer.model.parameters() if p.dim() == 4 and p.shape[2] > 1]
    assert convs and all(
        p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs
    )


def test_channels_last_gradients_match_nchw() -> None:
    tol = tolerance(Train.CHANNELS_LAST_GRAD)
    plain = _trainer(_unet(), (3, 8, 8), lr=0.0, grad_clip=0.0)
    fast = _trainer(_unet(), (3, 8, 8), lr=0.0, grad_clip=0.0, channels_last=True)
    plain.train_step()
    fast.train_step()
    for a, b in zip(plain.model.parameters(), fast.model.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None
        scale = a.grad.abs().max()
        assert scale > 0
        assert (a.grad - b.grad).abs().max() <= tol.atol * scale


def test_channels_last_parameters_match_nchw_after_three_steps() -> None:
    tol = tolerance(Train.CHANNELS_LAST_PARAMS)
    start = [p.detach().clone() for p in _unet().parameters()]
    plain = _steps(_trainer(_unet(), (3, 8, 8)), 3)
    fast = _steps(_trainer(_unet(), (3, 8, 8), channels_last=True), 3)
    for p0, a, b in zip(start, plain, fast, strict=True):
        moved = (a - p0).norm()
        assert moved > 0
        assert (a - b).norm() <= tol.atol * moved


class _ConvNet(nn.Module):
    """``model(x, t)``: two 3x3 convolutions with a time feature, for checkpoint tests."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv2d(3, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.silu(self.inp(x) + t.to(x.dtype).view(-1, 1, 1, 1) / 20.0)
        out: torch.Tensor = self.out(h)
        return out


def _conv_net() -> _ConvNet:
    torch.manual_seed(0)
    return _ConvNet()


def test_channels_last_fused_resume_is_bit_for_bit(tmp_path: Path) -> None:
    cfg: dict[str, Any] = {"channels_last": True, "optimizer_impl": "fused", "ema_rate": "0.9"}
    _trainer(_conv_net(), (3, 4, 4), tmp_path / "a", max_steps=4, **cfg).run()
    _trainer(_conv_net(), (3, 4, 4), tmp_path / "b", max_steps=2, **cfg).run()
    second = _trainer(_conv_net(), (3, 4, 4), tmp_path / "b", max_steps=4, **cfg)
    torch.manual_seed(1234)
    second.load(load_training_checkpoint(tmp_path / "b"))
    for param in second.params:
        assert second.optimizer.state[param]["exp_avg"].stride() == param.stride()
    second.run()
    a, b = load_training_checkpoint(tmp_path / "a"), load_training_checkpoint(tmp_path / "b")
    assert a.config["channels_last"] is True and a.config["optimizer_impl"] == "fused"
    assert a.model.keys() == b.model.keys()
    for key in a.model:
        assert torch.equal(a.model[key], b.model[key]), key
        assert torch.equal(a.emas[0.9][key], b.emas[0.9][key]), key


def test_old_checkpoint_config_without_the_switches_loads_with_defaults() -> None:
    values = TrainConfig().to_dict()
    for key in ("optimizer_impl", "channels_last", "allow_tf32", "cudnn_benchmark"):
        del values[key]
    config = TrainConfig.from_dict(values)
    assert (config.optimizer_impl, config.channels_last, config.allow_tf32, config.cudnn_benchmark) == (
        "auto",
        False,
        False,
        False,
    )
    full = TrainConfig(optimizer_impl="foreach", channels_last=True, allow_tf32=True, cudnn_benchmark=True)
    assert TrainConfig.from_dict(full.to_dict()) == full


def test_backend_flags_are_a_no_op_off_cuda() -> None:
    before = current_backend_flags()
    trainer = _trainer(
        _mlp(), (3, 4, 4), allow_tf32=not before.matmul_tf32, cudnn_benchmark=not before.cudnn_benchmark
    )
    assert trainer.saved_backend_flags is None
    assert current_backend_flags() == before


def test_backend_flags_on_a_cuda_device_are_set_and_restored() -> None:
    """The switch itself needs no GPU: it sets the process-wide torch.backends flags for a CUDA device."""
    before = current_backend_flags()
    try:
        saved = apply_backend_flags(torch.device("cuda"), allow_tf32=True, cudnn_benchmark=True)
        assert saved == before
        assert current_backend_flags() == BackendFlags(True, True, True)
        apply_backend_flags(torch.device("cuda"), allow_tf32=False, cudnn_benchmark=False)
        assert current_backend_flags() == BackendFlags(False, False, False)
    finally:
        set_backend_flags(before)
    assert current_backend_flags() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trainer_applies_backend_flags_on_cuda() -> None:
    before = current_backend_flags()
    try:
        ctx = DistContext(device=torch.device("cuda"))
        trainer = _trainer(_mlp(), (3, 4, 4), ctx=ctx, allow_tf32=True, cudnn_benchmark=True)
        assert current_backend_flags() == BackendFlags(True, True, True)
        assert trainer.saved_backend_flags == before
        trainer.restore_backend_flags()
        assert current_backend_flags() == before
    finally:
        set_backend_flags(before)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_recompute_norms_trains_bit_identically(precision: str) -> None:
    """``TrainConfig.recompute_norms`` switches the U-Net's segments to recomputation and changes nothing
    numerically: same weights after two AdamW steps (the recomputed forward values are the stored ones)."""
    plain = _trainer(_unet(), (3, 8, 8), precision=precision)
    fast = _trainer(_unet(), (3, 8, 8), precision=precision, recompute_norms=True)
    assert fast.model.recompute_norms and not plain.model.recompute_norms
    for a, b in zip(_steps(plain, 2), _steps(fast, 2), strict=True):
        assert torch.equal(a, b)
