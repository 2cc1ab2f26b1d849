"""``TrainConfig.compile_scope`` / ``compile_backend`` / ``compile_mode``: what the trainer hands to
``torch.compile`` and that it changes no number.

"loss" compiles the per-sample loss function (q_sample → network → L_hybrid) as one graph.  With the
backends that generate no code ("eager" replays the captured torch ops, "aot_eager" also traces the backward
through AOTAutograd and runs it op by op) every loss, gradient and weight must equal the uncompiled trainer's
bit for bit, dropout included.  The graph-break tests compile exactly the function the trainer compiles with
``fullgraph=True``: any graph break, host sync (``.item()``) or data-dependent branch in impl/diffusion or
impl/nn would make them fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch._dynamo.utils import counters

from impl.factory import create_model_and_diffusion
from impl.train import DistContext, InMemoryData, TrainConfig, Trainer
from impl.train.loss_fn import LossFn
from impl.train.run import RESUME_OVERRIDABLE, merge_resumed_config
from testing.assertions import assert_close
from testing.tolerances import CompileScope, tolerance

# A one-level U-Net with attention, GroupNorm + scale-shift + SiLU blocks, dropout and class labels: the
# paper's L_hybrid recipe (learned-range σ, RESCALED_MSE, cosine schedule) at the smallest traceable size.
# 64 channels = 2 per GroupNorm group, so no conv bias has an analytically zero gradient (with 1 channel per
# group, a bias feeding a GroupNorm gets a gradient of pure rounding noise, ~1e-8).
TINY_FLAGS: dict[str, Any] = {
    "image_size": 8,
    "num_channels": 64,
    "num_res_blocks": 1,
    "channel_mult": "1",
    "attention_resolutions": "8",
    "num_heads": 2,
    "learn_sigma": True,
    "diffusion_steps": 20,
    "noise_schedule": "cosine",
    "use_scale_shift_norm": True,
    "dropout": 0.1,
    "class_cond": True,
    "num_classes": 3,
}
STEPS = 3


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _model_and_diffusion(**overrides: Any) -> tuple[torch.nn.Module, Any]:
    """The tiny model with its zero-initialised layers given small random weights (so every parameter gets
    a gradient from the first step on), the same weights on every call."""
    torch.manual_seed(0)
    model, diffusion = create_model_and_diffusion(**{**TINY_FLAGS, **overrides})
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model, diffusion


def _trainer(**cfg: Any) -> Trainer:
    model, diffusion = _model_and_diffusion()
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (16, 3, 8, 8), generator=gen).to(torch.uint8)
    config = TrainConfig(
        **{
            "batch_size": 4,
            "microbatch": 2,
            "lr": 1e-3,
            "progress": False,
            "num_grid_samples": 0,
            "save_interval": 0,
            "model_flags": dict(TINY_FLAGS),
            **cfg,
        }
    )
    data = InMemoryData(pixels, torch.arange(16) % 3)
    return Trainer(model=model, diffusion=diffusion, data=data, config=config, class_cond=True, num_classes=3)


def _record_losses(trainer: Trainer) -> list[dict[str, torch.Tensor]]:
    """Wrap the trainer's loss call (compiled or not) so each microbatch's loss dict is kept."""
    seen: list[dict[str, torch.Tensor]] = []
    inner: LossFn = trainer.step_loss_fn

    def recording(
        x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, kwargs: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        out = inner(x, t, noise, kwargs)
        seen.append({name: value.detach().clone() for name, value in out.items()})
        return out

    trainer.step_loss_fn = recording
    return seen


def _run(trainer: Trainer) -> tuple[list[dict[str, torch.Tensor]], list[list[torch.Tensor]]]:
    """STEPS steps: the loss dicts of every microbatch, and after each step the gradients then weights."""
    losses = _record_losses(trainer)
    states: list[list[torch.Tensor]] = []
    for _ in range(STEPS):
        trainer.train_step()
        states.append([p.grad.clone() for p in trainer.params if p.grad is not None])
        states.append([p.detach().clone() for p in trainer.params])
    return losses, states


def _assert_bitwise_equal(
    a: tuple[list[dict[str, torch.Tensor]], list[list[torch.Tensor]]],
    b: tuple[list[dict[str, torch.Tensor]], list[list[torch.Tensor]]],
) -> None:
    (losses_a, states_a), (losses_b, states_b) = a, b
    assert len(losses_a) == len(losses_b) == STEPS * 2  # two microbatches per step
    for la, lb in zip(losses_a, losses_b, strict=True):
        assert la.keys() == lb.keys() == {"loss", "mse", "vb"}
        for name in la:
            assert torch.equal(la[name], lb[name]), name
    for sa, sb in zip(states_a, states_b, strict=True):
        assert len(sa) == len(sb) > 0
        for x, y in zip(sa, sb, strict=True):
            assert torch.equal(x, y)


@pytest.fixture(scope="module")
def eager_run() -> tuple[list[dict[str, torch.Tensor]], list[list[torch.Tensor]]]:
    return _run(_trainer())


@pytest.mark.parametrize(("scope", "backend"), [("loss", "eager"), ("loss", "aot_eager"), ("model", "eager")])
def test_compiled_trainer_matches_the_eager_trainer_bit_for_bit(
    scope: str, backend: str, eager_run: tuple[list[dict[str, torch.Tensor]], list[list[torch.Tensor]]]
) -> None:
    trainer = _trainer(compile=True, compile_scope=scope, compile_backend=backend)
    assert (trainer.step_loss_fn is not trainer.loss_fn) == (scope == "loss")
    compiled_run = _run(trainer)
    # one graph, traced once: no graph break, and no recompile over 3 steps (6 calls)
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]
    _assert_bitwise_equal(compiled_run, eager_run)


def test_the_bitwise_comparison_sees_another_seed(
    eager_run: tuple[list[dict[str, torch.Tensor]], list[list[torch.Tensor]]],
) -> None:
    """The check above can fail: another seed (other t, noise, dropout) differs in the first loss."""
    with pytest.raises(AssertionError):
        _assert_bitwise_equal(_run(_trainer(seed=1)), eager_run)


LOSS_VARIANTS: dict[str, dict[str, Any]] = {
    "hybrid": {},  # learned-range σ, RESCALED_MSE: L_simple + L_vlb on the frozen mean
    "simple": {"learn_sigma": False},  # fixed σ, MSE
    "vlb": {"use_kl": True},  # learned-range σ, RESCALED_KL
}


@pytest.mark.parametrize(
    ("variant", "precision"), [("hybrid", "fp32"), ("hybrid", "bf16"), ("simple", "fp32"), ("vlb", "fp32")]
)
def test_the_compiled_loss_function_has_no_graph_break(variant: str, precision: str) -> None:
    """``fullgraph=True`` of exactly ``Trainer.loss_fn`` (what compile_scope="loss" compiles) succeeds and
    returns the eager losses; t covers 0 (the decoder NLL branch) and T − 1."""
    model, diffusion = _model_and_diffusion(**LOSS_VARIANTS[variant])
    pixels = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    config = TrainConfig(batch_size=4, precision=precision, progress=False, num_grid_samples=0)
    trainer = Trainer(
        model=model,
        diffusion=diffusion,
        data=InMemoryData(pixels, torch.arange(4) % 3),
        config=config,
        class_cond=True,
        num_classes=3,
    )
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1
    noise = torch.randn(4, 3, 8, 8, generator=gen)
    t = torch.tensor([0, 1, 10, 19])
    kwargs = {"y": torch.tensor([0, 1, 2, 0])}
    compiled = torch.compile(trainer.loss_fn, backend="eager", fullgraph=True)
    torch.manual_seed(3)
    got = compiled(x, t, noise, kwargs)
    torch.manual_seed(3)
    expected = trainer.loss_fn(x, t, noise, kwargs)
    assert (
        got.keys()
        == expected.keys()
        == ({"loss"} if variant == "vlb" else {"loss", "mse"} | ({"vb"} if variant == "hybrid" else set()))
    )
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    got["loss"].sum().backward()  # type: ignore[no-untyped-call]  # gradients reach the network
    assert all(p.grad is not None for p in trainer.params)


# ---- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("compile_scope", "network"),
        ("compile_scope", ""),
        ("compile_backend", "cudagraphs"),
        ("compile_backend", "Inductor"),
        ("compile_mode", "fast"),
        ("compile_mode", None),
    ],
)
def test_bad_compile_settings_are_value_errors_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"{field} must be one of"):
        TrainConfig(**{field: value}).validate()
    with pytest.raises(ValueError, match=f"{field} must be one of"):
        _trainer(compile=True, **{field: value})


def test_an_inductor_mode_needs_the_inductor_backend() -> None:
    with pytest.raises(ValueError, match="compile_mode 'reduce-overhead' is an inductor mode"):
        TrainConfig(compile_backend="eager", compile_mode="reduce-overhead").validate()
    for mode in ("", "default"):
        TrainConfig(compile_backend="aot_eager", compile_mode=mode).validate()
    for mode in ("reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"):
        TrainConfig(compile_mode=mode).validate()


def test_compile_settings_round_trip_and_old_configs_load_with_defaults() -> None:
    full = TrainConfig(
        compile=True, compile_scope="loss", compile_backend="aot_eager", compile_mode="default"
    )
    assert TrainConfig.from_dict(full.to_dict()) == full
    old = TrainConfig().to_dict()
    for key in ("compile_scope", "compile_backend", "compile_mode"):
        del old[key]
    config = TrainConfig.from_dict(old)
    assert (config.compile_scope, config.compile_backend, config.compile_mode) == ("model", "inductor", "")


def test_a_resumed_run_may_change_the_compile_settings() -> None:
    assert {"compile", "compile_scope", "compile_backend", "compile_mode"} <= RESUME_OVERRIDABLE
    saved = TrainConfig(max_steps=10)
    requested = TrainConfig(
        compile=True, compile_scope="loss", compile_backend="eager", compile_mode="default"
    )
    explicit = {"compile", "compile_scope", "compile_backend", "compile_mode"}
    merged = merge_resumed_config(saved, requested, explicit, set())
    assert (merged.compile, merged.compile_scope, merged.compile_backend, merged.compile_mode) == (
        True,
        "loss",
        "eager",
        "default",
    )
    assert merged.max_steps == 10


# ---- inductor (code generation: float rounding only) ---------------------------------------------

INDUCTOR_REASON = (
    "inductor codegen of the tiny U-Net's forward + backward takes minutes on a 2-core CPU; set "
    "IDDPM_RUN_INDUCTOR=1 (or run on CUDA) to run it"
)


def _inductor_losses_and_grads(
    device: torch.device, scope: str | None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One forward + backward of the loss (dropout off) on fixed inputs: per-sample losses, gradients."""
    model, diffusion = _model_and_diffusion(dropout=0.0)
    pixels = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    cfg: dict[str, Any] = {"compile": scope is not None, "compile_scope": scope or "model"}
    config = TrainConfig(batch_size=4, progress=False, num_grid_samples=0, device=str(device), **cfg)
    trainer = Trainer(
        model=model,
        diffusion=diffusion,
        data=InMemoryData(pixels, torch.arange(4) % 3),
        config=config,
        ctx=DistContext(device=device),
        class_cond=True,
        num_classes=3,
    )
    gen = torch.Generator().manual_seed(2)
    x = (torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1).to(device)
    noise = torch.randn(4, 3, 8, 8, generator=gen).to(device)
    t = torch.tensor([0, 1, 10, 19], device=device)
    out = trainer._losses(x, t, noise, {"y": torch.tensor([0, 1, 2, 0], device=device)})
    out["loss"].sum().backward()  # type: ignore[no-untyped-call]
    grads = [p.grad for p in trainer.params]
    assert all(g is not None for g in grads)
    return out["loss"].detach().cpu(), [g.detach().cpu() for g in grads if g is not None]


def _check_inductor(device: torch.device, scope: str) -> None:
    loss_tol = tolerance(CompileScope.INDUCTOR_LOSSES)
    grad_tol = tolerance(CompileScope.INDUCTOR_GRADS)
    loss_ref, grads_ref = _inductor_losses_and_grads(device, None)
    loss, grads = _inductor_losses_and_grads(device, scope)
    assert_close(loss, loss_ref, tol=loss_tol, label="per-sample losses")
    assert len(grads) == len(grads_ref) > 0
    for g, g_ref in zip(grads, grads_ref, strict=True):
        scale = g_ref.abs().max()
        assert scale > 0
        assert (g - g_ref).abs().max() <= grad_tol.atol * scale


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("IDDPM_RUN_INDUCTOR"), reason=INDUCTOR_REASON)
def test_inductor_compiled_loss_matches_eager_on_the_cpu() -> None:
    _check_inductor(torch.device("cpu"), "loss")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("scope", ["loss", "model"])
def test_inductor_compiled_loss_matches_eager_on_cuda(scope: str) -> None:
    _check_inductor(torch.device("cuda"), scope)
