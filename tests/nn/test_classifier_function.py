"""The classifier computes the function of an independent float64 forward; loading, inputs, gradients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from impl.factory import create_classifier, load_classifier
from impl.nn import (
    AttentionBlock,
    AttentionPool2d,
    CheckpointMismatchError,
    EncoderUNetModel,
    set_attention_backend,
)
from testing.assertions import assert_close
from testing.tolerances import UNet, tolerance
from tests.nn._functional_classifier import reference_classifier_forward
from tests.nn._helpers import inputs, randomize_all_parameters

SMALL: dict[str, Any] = {
    "image_size": 8,
    "classifier_width": 32,
    "classifier_depth": 1,
    "classifier_attention_resolutions": "4",
    "num_classes": 5,
    "num_head_channels": 32,
}

CASES = [
    ("adaptive", False, True),
    ("attention", True, True),
    ("attention", False, False),
    ("spatial", False, True),
    ("spatial_v2", True, False),
]


def _small(pool: str, updown: bool, scale_shift: bool) -> EncoderUNetModel:
    return create_classifier(
        **SMALL,
        classifier_pool=pool,
        classifier_resblock_updown=updown,
        classifier_use_scale_shift_norm=scale_shift,
    )


@pytest.mark.parametrize(("pool", "updown", "scale_shift"), CASES)
def test_logits_equal_independent_float64_forward(pool: str, updown: bool, scale_shift: bool) -> None:
    model = _small(pool, updown, scale_shift).double().eval()
    randomize_all_parameters(model, seed=3, std=0.1)
    x, t = inputs(batch=2, size=(8, 8), dtype=torch.float64)
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    down_blocks = frozenset({2}) if updown else frozenset()  # input_blocks.2 is the one downsampling
    with torch.no_grad():
        expected = reference_classifier_forward(sd, x, t, pool=pool, heads=2, down_blocks=down_blocks)
        for backend in ("naive", "sdpa"):
            for module in model.modules():
                if hasattr(module, "attention_backend"):
                    module.attention_backend = backend
            actual = model(x, t)
            assert actual.shape == (2, 5)
            assert_close(actual, expected, tol=tolerance(UNet.CLASSIFIER_FORWARD_FLOAT64), label=backend)
    assert expected.abs().max() > 0.1  # not a comparison of two near-zero tensors
    assert (expected[0] - expected[1]).abs().max() > 1e-3  # the two samples' logits differ


@pytest.mark.parametrize("pool", ["attention", "adaptive"])
def test_new_attention_order_logits_equal_independent_float64_forward(pool: str) -> None:
    """create_classifier(use_new_attention_order=True): the attention blocks split qkv as (q|k|v, heads, c)
    (guided-diffusion's EncoderUNetModel flag; the pool's split is that order either way)."""
    model = create_classifier(**SMALL, classifier_pool=pool, use_new_attention_order=True).double().eval()
    randomize_all_parameters(model, seed=9, std=0.1)
    blocks = [m for m in model.modules() if isinstance(m, AttentionBlock)]
    assert blocks and all(b.use_new_attention_order and b.num_heads == 2 for b in blocks)
    x, t = inputs(batch=2, size=(8, 8), dtype=torch.float64)
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    down_blocks = frozenset({2})  # classifier_resblock_updown defaults to True
    with torch.no_grad():
        expected = reference_classifier_forward(
            sd, x, t, pool=pool, heads=2, down_blocks=down_blocks, new_order=True
        )
        legacy = reference_classifier_forward(sd, x, t, pool=pool, heads=2, down_blocks=down_blocks)
        for backend in ("naive", "sdpa"):
            for module in model.modules():
                if hasattr(module, "attention_backend"):
                    module.attention_backend = backend
            actual = model(x, t)
            assert_close(actual, expected, tol=tolerance(UNet.CLASSIFIER_FORWARD_FLOAT64), label=backend)
    assert expected.abs().max() > 0.1
    assert (expected - legacy).abs().max() > 1e-3  # the order changes the logits on the same weights
    plain = create_classifier(**SMALL, classifier_pool=pool)
    assert [(k, v.shape) for k, v in plain.state_dict().items()] == [(k, v.shape) for k, v in sd.items()]
    assert not any(m.use_new_attention_order for m in plain.modules() if isinstance(m, AttentionBlock))


def test_logits_depend_on_timestep_and_samples_are_independent() -> None:
    model = _small("attention", True, True).eval()
    randomize_all_parameters(model, seed=4, std=0.1)
    x, _ = inputs(batch=2, size=(8, 8))
    with torch.no_grad():
        a = model(x, torch.tensor([10.0, 10.0]))
        b = model(x, torch.tensor([10.0, 900.0]))
    assert torch.equal(a[0], b[0])
    assert (a[1] - b[1]).abs().max() > 1e-3


def test_gradients_reach_every_parameter_and_the_input() -> None:
    model = _small("attention", True, True).train()
    randomize_all_parameters(model, seed=5, std=0.1)
    x, t = inputs(batch=2, size=(8, 8))
    x.requires_grad_(True)
    torch.log_softmax(model(x, t), dim=-1)[:, 1].sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []
    assert x.grad is not None and torch.any(x.grad != 0)  # what classifier guidance differentiates


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (2, 1, 8, 8), (3, 8, 8)])
def test_wrong_input_shape_is_a_value_error(shape: tuple[int, ...]) -> None:
    model = _small("adaptive", False, True)
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.zeros(shape), torch.zeros(shape[0]))


def test_load_classifier_round_trip_and_strict_keys(tmp_path: Path) -> None:
    flags = {**SMALL, "classifier_pool": "spatial_v2"}
    source = create_classifier(**flags)
    randomize_all_parameters(source, seed=6)
    path = tmp_path / "classifier.pt"
    torch.save(source.state_dict(), path)
    loaded = load_classifier(path, **flags)
    assert not loaded.training
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(CheckpointMismatchError):
        load_classifier(path, **{**flags, "classifier_pool": "spatial"})
    with pytest.raises(ValueError, match="unknown classifier flags"):
        load_classifier(path, **flags, num_channels=64)


def test_fp16_flag_changes_nothing_on_cpu() -> None:
    plain = _small("attention", True, True).eval()
    randomize_all_parameters(plain, seed=7, std=0.1)
    fp16 = create_classifier(**SMALL, classifier_pool="attention", classifier_use_fp16=True).eval()
    fp16.load_state_dict(plain.state_dict())
    x, t = inputs(batch=2, size=(8, 8))
    with torch.no_grad():
        assert torch.equal(fp16(x, t), plain(x, t))
    assert fp16.use_fp16 and not plain.use_fp16


@pytest.mark.cuda
def test_fp16_flag_runs_the_trunk_in_float16_on_cuda() -> None:
    plain = _small("attention", True, True).eval()
    randomize_all_parameters(plain, seed=8, std=0.1)
    fp16 = create_classifier(**SMALL, classifier_pool="attention", classifier_use_fp16=True).eval()
    fp16.load_state_dict(plain.state_dict())
    plain, fp16 = plain.cuda(), fp16.cuda()
    x, t = inputs(batch=2, size=(8, 8))
    x, t = x.cuda(), t.cuda()
    seen: list[torch.dtype] = []
    fp16.input_blocks[1].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with torch.no_grad():
        expected = plain(x, t)
        actual = fp16(x, t)
    assert seen == [torch.float16]
    assert actual.dtype == torch.float32
    assert_close(actual, expected, tol=tolerance(UNet.CLASSIFIER_AUTOCAST_FLOAT16))


def test_attention_pool_follows_the_attention_backend() -> None:
    model = create_classifier(**SMALL, classifier_pool="attention", attention_backend="naive")
    pools = [m for m in model.modules() if isinstance(m, AttentionPool2d)]
    assert [p.attention_backend for p in pools] == ["naive"]
    set_attention_backend(model, "sdpa")
    switched = [
        m.attention_backend for m in model.modules() if isinstance(m, (AttentionBlock, AttentionPool2d))
    ]
    assert len(switched) > 1 and set(switched) == {"sdpa"}
