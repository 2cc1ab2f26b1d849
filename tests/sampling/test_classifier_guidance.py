"""classifier_cond_fn [S48] beyond the linear closed form of the catalogue: through the real noisy-image
classifier against a float64 finite difference, at the model's timesteps on a respaced chain, its dtypes
and gradient hygiene, and scale 0 as unguided sampling bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

import impl
from impl.sampling.classifier_guidance import (
    WithoutLabels,
    check_classifier_scale,
    classifier_cond_fn,
    guidance_cond_fn,
)
from testing.assertions import assert_close
from testing.tolerances import Sampling, tolerance
from tests.cli.guidance_fixtures import TINY_CLASSIFIER_FLAGS

FD_STEP = 1e-4  # the central difference's h (the budget's derivation assumes it)


def _perturbed_classifier(pool: str, seed: int) -> torch.nn.Module:
    """A float64 8-px classifier with every parameter moved by 0.1·N(0, 1): zero-initialised heads would
    make every gradient 0 and the comparison vacuous."""
    torch.manual_seed(seed)
    flags = {**TINY_CLASSIFIER_FLAGS, "classifier_pool": pool, "classifier_attention_resolutions": "4"}
    classifier = impl.create_classifier(**flags).double().eval()
    with torch.no_grad():
        for parameter in classifier.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return classifier


@pytest.mark.parametrize("pool", ["adaptive", "attention", "spatial", "spatial_v2"])
def test_gradient_through_the_classifier_equals_a_float64_central_difference(pool: str) -> None:
    classifier = _perturbed_classifier(pool, seed=1)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64, generator=gen)
    t = torch.tensor([0, 7, 19])
    y = torch.tensor([1, 5, 9])
    scale = 2.5
    with torch.no_grad():  # as the sampling loops call it
        grad = classifier_cond_fn(classifier, scale)(x, t, y=y)
    assert grad.dtype == torch.float64 and grad.shape == x.shape

    def log_p(points: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.log_softmax(classifier(points, t), dim=-1).gather(1, y[:, None])[:, 0]

    assert float(grad.abs().max()) > 1e-3  # a real gradient, not the zero-initialised head's
    for _ in range(4):
        v = torch.randn(x.shape, dtype=torch.float64, generator=gen)
        v = v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        plus, minus = log_p(x + FD_STEP * v), log_p(x - FD_STEP * v)
        difference = (plus - minus) / (2 * FD_STEP)
        directional = (grad * v).flatten(1).sum(dim=1) / scale
        assert_close(
            directional,
            difference,
            tol=tolerance(Sampling.CLASSIFIER_GRADIENT_FD_FLOAT64),
            scale=torch.maximum(plus.abs(), minus.abs()),
            label=f"{pool}: cond_fn·v / s vs central difference of log p",
        )


def test_gradient_is_float32_under_a_low_precision_classifier_and_leaves_no_state() -> None:
    classifier = _perturbed_classifier("adaptive", seed=3).float()

    def bf16_logits(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return classifier(x, t).to(torch.bfloat16)  # what an autocast region may hand back

    x = torch.randn(2, 1, 8, 8)
    before = x.clone()
    t, y = torch.tensor([3, 4]), torch.tensor([0, 2])
    with torch.no_grad():
        grad = classifier_cond_fn(bf16_logits, 1.0)(x, t, y=y)
        reference = classifier_cond_fn(classifier, 1.0)(x, t, y=y)
    assert grad.dtype == torch.float32 and torch.isfinite(grad).all()
    # bf16 logits carry ~3 significant digits: the gradient is the float32 one to that accuracy, not garbage
    assert float((grad - reference).abs().max()) <= 0.05 * float(reference.abs().max())
    assert torch.equal(x, before) and not x.requires_grad
    assert all(p.grad is None for p in classifier.parameters())


def test_gradient_is_per_sample_and_linear_in_the_scale() -> None:
    classifier = _perturbed_classifier("attention", seed=4)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    t, y = torch.tensor([0, 5, 10, 19]), torch.tensor([3, 3, 7, 0])
    whole = classifier_cond_fn(classifier, 1.0)(x, t, y=y)
    for i in range(4):
        alone = classifier_cond_fn(classifier, 1.0)(x[i : i + 1], t[i : i + 1], y=y[i : i + 1])
        assert torch.allclose(alone, whole[i : i + 1], rtol=1e-12, atol=1e-14)
    assert torch.equal(classifier_cond_fn(classifier, 4.0)(x, t, y=y), whole * 4.0)


def test_bad_scale_and_missing_labels_are_value_errors() -> None:
    for bad in (math.nan, math.inf, -math.inf, -0.5, True, "1"):
        with pytest.raises(ValueError, match="classifier_scale must be a finite number >= 0"):
            check_classifier_scale(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model_kwargs"):
        classifier_cond_fn(_perturbed_classifier("adaptive", 5), 1.0)(
            torch.zeros(1, 1, 8, 8, dtype=torch.float64), torch.tensor([0])
        )
    assert guidance_cond_fn(_perturbed_classifier("adaptive", 5), 0.0) is None
    assert guidance_cond_fn(_perturbed_classifier("adaptive", 5), 0.5) is not None


class _Recorder(torch.nn.Module):
    """Records the timesteps it is called with; a network returning 0.1·x (or a constant-logit classifier)."""

    def __init__(self, out_channels: int | None) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.seen: list[torch.Tensor] = []
        self.weight = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs: object) -> torch.Tensor:
        self.seen.append(t.detach().clone())
        if self.out_channels is None:  # classifier: logits depending on x so the gradient is non-zero
            return torch.stack([x.flatten(1).sum(1), -x.flatten(1).sum(1)], dim=1) * self.weight
        return 0.1 * x


@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("use_ddim", [False, True])
def test_classifier_sees_the_models_timesteps_on_a_respaced_chain(rescale: bool, use_ddim: bool) -> None:
    diffusion = impl.create_gaussian_diffusion(
        steps=20, noise_schedule="cosine", timestep_respacing="5", rescale_timesteps=rescale
    )
    model, classifier = _Recorder(1), _Recorder(None)
    loop = diffusion.ddim_sample_loop if use_ddim else diffusion.p_sample_loop
    loop(
        model,
        (2, 1, 4, 4),
        cond_fn=classifier_cond_fn(classifier, 1.0),
        model_kwargs={"y": torch.tensor([0, 1])},
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    kept = sorted(diffusion.timestep_map, reverse=True)
    # [S27]: stride 19/4 = 4.75, rounded: 0, 5, 10 (9.5 to even), 14, 19; not the respaced 4, 3, 2, 1, 0
    assert kept == [19, 14, 10, 5, 0]
    expected = [torch.full((2,), k * (1000.0 / 20) if rescale else k) for k in kept]
    assert len(model.seen) == len(classifier.seen) == len(kept)
    for m, c, e in zip(model.seen, classifier.seen, expected, strict=True):
        assert torch.equal(c, m) and torch.equal(c.double(), e.double())


def test_without_labels_drops_y_only() -> None:
    seen: dict[str, object] = {}

    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs: object) -> torch.Tensor:
            seen.update(kwargs)
            return x

    x = torch.ones(1, 1, 2, 2)
    assert torch.equal(WithoutLabels(Net())(x, torch.zeros(1), y=torch.zeros(1), other=3), x)
    assert seen == {"other": 3}


@pytest.mark.cuda
def test_fp16_trunk_on_cuda_gives_a_float32_gradient() -> None:
    """classifier_use_fp16 runs the trunk under float16 autocast on CUDA; the cond_fn's log-softmax and
    gradient are float32 all the same."""
    torch.manual_seed(6)
    classifier = impl.create_classifier(**{**TINY_CLASSIFIER_FLAGS, "classifier_use_fp16": True})
    with torch.no_grad():
        for parameter in classifier.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    classifier = classifier.cuda().eval()
    x = torch.randn(2, 1, 8, 8, device="cuda")
    t, y = torch.tensor([0, 9], device="cuda"), torch.tensor([1, 2], device="cuda")
    with torch.no_grad():
        grad = classifier_cond_fn(classifier, 1.0)(x, t, y=y)
    assert grad.dtype == torch.float32 and grad.device == x.device
    assert torch.isfinite(grad).all() and float(grad.abs().max()) > 0
