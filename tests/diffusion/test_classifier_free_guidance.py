"""`ClassifierFreeGuidance` inside the sampling loops [S50]–[S52]: one batched network call per step, the
variance channels of the conditional branch, w = 1 / w = 0 bit for bit the conditional / null-label
sampler (ancestral and DDIM, respaced), and composition with a cond_fn and a compiled step runner."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import impl
from impl.sampling.compiled import CompiledStepRunner
from impl.sampling.guidance_free import ClassifierFreeGuidance, guided_network

NUM_CLASSES = 4
SHAPE = (3, 1, 8, 8)


@pytest.fixture(scope="module")
def model_and_diffusion() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    model, diffusion = impl.create_model_and_diffusion(
        image_size=8,
        in_channels=1,
        num_channels=32,
        num_res_blocks=1,
        channel_mult="1,2",
        attention_resolutions="",
        learn_sigma=True,
        noise_schedule="cosine",
        diffusion_steps=20,
        timestep_respacing="5",
        class_cond=True,
        num_classes=NUM_CLASSES,
        class_dropout_prob=0.1,
    )
    # a freshly initialised U-Net's output block is zero: perturb every weight so the labels matter
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval(), diffusion


def _labels() -> torch.Tensor:
    return torch.tensor([0, 3, 1])


def _run(diffusion: Any, model: Any, *, ddim: bool, y: torch.Tensor, **kw: Any) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    loop = diffusion.ddim_sample_loop if ddim else diffusion.p_sample_loop
    extra = {"eta": 0.5} if ddim else {}
    with torch.no_grad():
        out: torch.Tensor = loop(
            model, SHAPE, model_kwargs={"y": y}, generator=gen, progress=False, **extra, **kw
        )
    return out


def test_the_null_label_is_an_extra_embedding_row(model_and_diffusion: tuple[nn.Module, Any]) -> None:
    model, _ = model_and_diffusion
    assert model.label_emb.weight.shape[0] == NUM_CLASSES + 1
    plain = impl.create_model(
        8,
        32,
        1,
        class_cond=True,
        attention_resolutions="",
        in_channels=1,
        channel_mult="1,2",
        num_classes=NUM_CLASSES,
    )
    assert plain.label_emb.weight.shape[0] == NUM_CLASSES  # class_dropout_prob 0: the original layout


class CountingModel(nn.Module):
    """Counts calls and records the batch sizes and labels a wrapped network is called with."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[int, torch.Tensor]] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.shape[0], y.clone()))
        out: torch.Tensor = self.inner(x, t, y=y)
        return out


@pytest.mark.parametrize("ddim", [False, True])
def test_each_guided_step_is_one_batched_network_call(
    model_and_diffusion: tuple[nn.Module, Any], ddim: bool
) -> None:
    model, diffusion = model_and_diffusion
    counting = CountingModel(model)
    _run(diffusion, ClassifierFreeGuidance(counting, 3.0, NUM_CLASSES), ddim=ddim, y=_labels())
    assert len(counting.calls) == diffusion.num_timesteps == 5
    batch = SHAPE[0]
    for size, y in counting.calls:
        assert size == 2 * batch
        assert torch.equal(y[:batch], _labels()) and bool((y[batch:] == NUM_CLASSES).all())


class RowwiseModel(nn.Module):
    """A network whose output rows depend on their own (x, t, y) only, so batching cannot move a bit:
    mean channels x·(1 + y) + t/10, variance channels tanh(x − y)."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        label = y.to(x.dtype).view(-1, 1, 1, 1)
        time = t.to(x.dtype).view(-1, 1, 1, 1)
        return torch.cat([x * (1 + label) + time / 10, torch.tanh(x - label)], dim=1)


def test_the_variance_channels_come_from_the_conditional_branch() -> None:
    x = torch.randn(SHAPE)
    t = torch.tensor([1.0, 2.0, 3.0])
    net = RowwiseModel()
    out = ClassifierFreeGuidance(net, 2.5, NUM_CLASSES)(x, t, y=_labels())
    cond = net(x, t, _labels())
    uncond = net(x, t, torch.full((3,), NUM_CLASSES))
    assert torch.equal(out[:, 1:], cond[:, 1:])
    assert not torch.equal(out[:, 1:], uncond[:, 1:])  # the two branches' variances do differ
    assert not torch.equal(out[:, :1], cond[:, :1])  # and the mean part is guided


@pytest.mark.parametrize("ddim", [False, True])
def test_scale_one_is_conditional_sampling_bit_for_bit(
    model_and_diffusion: tuple[nn.Module, Any], ddim: bool
) -> None:
    model, diffusion = model_and_diffusion
    plain = _run(diffusion, model, ddim=ddim, y=_labels())
    guided = _run(diffusion, ClassifierFreeGuidance(model, 1.0, NUM_CLASSES), ddim=ddim, y=_labels())
    assert torch.equal(guided, plain)
    stronger = _run(diffusion, ClassifierFreeGuidance(model, 3.0, NUM_CLASSES), ddim=ddim, y=_labels())
    assert not torch.allclose(stronger, plain, atol=1e-3)  # the scale does change the samples


@pytest.mark.parametrize("ddim", [False, True])
def test_scale_zero_is_null_label_sampling_bit_for_bit(
    model_and_diffusion: tuple[nn.Module, Any], ddim: bool
) -> None:
    model, diffusion = model_and_diffusion
    null = torch.full((SHAPE[0],), NUM_CLASSES)
    unconditional = _run(diffusion, model, ddim=ddim, y=null)
    guided = _run(diffusion, ClassifierFreeGuidance(model, 0.0, NUM_CLASSES), ddim=ddim, y=_labels())
    assert torch.equal(guided, unconditional)
    assert not torch.equal(unconditional, _run(diffusion, model, ddim=ddim, y=_labels()))


def test_other_per_sample_kwargs_are_repeated_for_the_unconditional_half() -> None:
    seen: dict[str, Any] = {}

    class Recording(nn.Module):
        def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            seen.update(kwargs)
            return torch.cat([x, x], dim=1)

    weights = torch.tensor([1.0, 2.0, 3.0])
    ClassifierFreeGuidance(Recording(), 2.0, NUM_CLASSES)(
        torch.zeros(SHAPE), torch.zeros(3), y=_labels(), weights=weights, note="as is"
    )
    assert torch.equal(seen["weights"], torch.cat([weights, weights])) and seen["note"] == "as is"


def test_a_cond_fn_sees_the_real_labels_and_composes(model_and_diffusion: tuple[nn.Module, Any]) -> None:
    """A classifier-guidance cond_fn gets the batch's own labels (not the doubled batch); a zero gradient
    leaves the guided samples as they are."""
    model, diffusion = model_and_diffusion
    received: list[torch.Tensor] = []

    def zero_grad(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        assert y is not None
        received.append(y)
        return torch.zeros_like(x)

    cfg = ClassifierFreeGuidance(model, 3.0, NUM_CLASSES)
    with_cond = _run(diffusion, cfg, ddim=False, y=_labels(), cond_fn=zero_grad)
    assert len(received) == 5 and all(torch.equal(y, _labels()) for y in received)
    assert torch.equal(with_cond, _run(diffusion, cfg, ddim=False, y=_labels()))


@pytest.mark.parametrize("ddim", [False, True])
def test_a_compiled_step_runner_traces_through_the_wrapper(
    model_and_diffusion: tuple[nn.Module, Any], ddim: bool
) -> None:
    """The eager backend replays the captured ops as they are: the compiled guided loop is the eager one."""
    model, diffusion = model_and_diffusion
    cfg = ClassifierFreeGuidance(model, 3.0, NUM_CLASSES)
    eager = _run(diffusion, cfg, ddim=ddim, y=_labels())
    compiled = _run(diffusion, cfg, ddim=ddim, y=_labels(), step_runner=CompiledStepRunner(backend="eager"))
    assert torch.equal(compiled, eager)


def test_bad_input_is_a_value_error_naming_it(model_and_diffusion: tuple[nn.Module, Any]) -> None:
    model, _ = model_and_diffusion
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError, match="guidance_scale must be a finite number"):
            ClassifierFreeGuidance(model, bad, NUM_CLASSES)
    with pytest.raises(ValueError, match="null_label must be an integer >= 1"):
        ClassifierFreeGuidance(model, 2.0, 0)
    with pytest.raises(ValueError, match="needs class labels y"):
        ClassifierFreeGuidance(model, 2.0, NUM_CLASSES)(torch.zeros(SHAPE), torch.zeros(3))
    with pytest.raises(ValueError, match="needs a class-conditional model"):
        guided_network(model, 2.0, None)
    assert guided_network(model, None, None) is model
