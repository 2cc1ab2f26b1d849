"""The network computes SPEC §8's function: an independent functional forward, conditioning, gradients."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from impl.nn import AttentionBlock, UNetModel, timestep_embedding
from testing.assertions import assert_close
from testing.tolerances import UNet, tolerance
from tests.nn._functional_reference import reference_unet_forward
from tests.nn._helpers import inputs, perturb_zero_parameters, randomize_all_parameters, tiny_unet

REFERENCE_CASES: list[dict[str, Any]] = [
    {"num_classes": 5, "num_heads": 2, "num_heads_upsample": 4},
    {
        "use_scale_shift_norm": False,
        "num_heads": 1,
        "channel_mult": (1, 2, 2),
        "attention_resolutions": (2, 4),
    },
    {"num_head_channels": 32, "num_res_blocks": 2, "out_channels": 3},
]


@pytest.mark.parametrize("overrides", REFERENCE_CASES)
def test_forward_equals_independent_float64_reference(overrides: dict[str, Any]) -> None:
    model = tiny_unet(**overrides).double().eval()
    randomize_all_parameters(model, seed=1)
    x, t = inputs(batch=2, size=(8, 8), dtype=torch.float64)
    y = torch.tensor([4, 1]) if model.num_classes else None
    heads = 64 // 32 if overrides.get("num_head_channels") else model.num_heads
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    with torch.no_grad():
        expected = reference_unet_forward(sd, x, t, y, heads=heads, heads_upsample=model.num_heads_upsample)
        for backend in ("naive", "sdpa"):
            model.attention_backend = backend
            actual = model(x, t, y)
            assert_close(actual, expected, tol=tolerance(UNet.FORWARD_FLOAT64), label=backend)
    assert expected.abs().max() > 0.1  # the comparison is not between two near-zero tensors


NEW_ORDER_CASES: list[dict[str, Any]] = [
    {"num_classes": 5, "num_heads": 2, "num_heads_upsample": 4},
    {
        "num_head_channels": 8,
        "use_scale_shift_norm": False,
        "channel_mult": (1, 2, 2),
        "attention_resolutions": (2, 4),
    },
]
"""Several heads everywhere: with one head the two orders are the same split."""


def _heads(model: UNetModel, overrides: dict[str, Any]) -> tuple[int, int]:
    """(encoder and middle heads, decoder heads) of ``model``; a fixed width per head wins."""
    if "num_head_channels" in overrides:
        width = {b.channels for b in model.modules() if isinstance(b, AttentionBlock)}
        assert len(width) == 1, "the reference takes one head count per half"
        heads = width.pop() // overrides["num_head_channels"]
        return heads, heads
    return model.num_heads, model.num_heads_upsample


@pytest.mark.parametrize("overrides", NEW_ORDER_CASES)
def test_new_attention_order_equals_independent_float64_reference(overrides: dict[str, Any]) -> None:
    """use_new_attention_order=True is held to the reference's (q|k|v, heads, c) split, both backends: a
    float64 copy within the float64 budget, the float32 model (same weights, same inputs) within the
    float32 one."""
    model = tiny_unet(**overrides, use_new_attention_order=True).eval()
    randomize_all_parameters(model, seed=11)
    model64 = copy.deepcopy(model).double()
    heads, heads_up = _heads(model, overrides)
    assert min(heads, heads_up) >= 2
    x, t = inputs(batch=2, size=(8, 8), seed=3)
    y = torch.tensor([4, 1]) if model.num_classes else None
    sd = {k: v.detach() for k, v in model64.state_dict().items()}
    x64, t64 = x.double(), t.double()
    with torch.no_grad():
        expected = reference_unet_forward(
            sd, x64, t64, y, heads=heads, heads_upsample=heads_up, new_order=True
        )
        legacy = reference_unet_forward(sd, x64, t64, y, heads=heads, heads_upsample=heads_up)
        for backend in ("naive", "sdpa"):
            model64.attention_backend = model.attention_backend = backend
            actual64 = model64(x64, t64, y)
            assert_close(actual64, expected, tol=tolerance(UNet.FORWARD_FLOAT64), label=f"{backend} float64")
            actual32 = model(x, t, y)
            assert actual32.dtype == torch.float32
            assert_close(
                actual32.double(),
                expected,
                tol=tolerance(UNet.REASSOCIATION_FLOAT32),
                label=f"{backend} float32",
            )
    assert expected.abs().max() > 0.1  # not a comparison of two near-zero tensors
    # the reference's two orders differ on these weights, by far more than the float32 budget
    assert (expected - legacy).abs().max() > 100 * tolerance(UNet.REASSOCIATION_FLOAT32).atol


def test_the_two_attention_orders_share_the_layout_and_differ_in_function() -> None:
    """The same state dict (names, shapes) runs in both orders, and the outputs differ: the flag acts."""
    legacy = tiny_unet(num_classes=3, num_heads=4).eval()
    new = tiny_unet(num_classes=3, num_heads=4, use_new_attention_order=True).eval()
    a, b = legacy.state_dict(), new.state_dict()
    assert list(a) == list(b)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    randomize_all_parameters(legacy, seed=12)
    new.load_state_dict(legacy.state_dict(), strict=True)
    x, t = inputs(batch=2, seed=4)
    y = torch.tensor([0, 2])
    with torch.no_grad():
        out_legacy, out_new = legacy(x, t, y), new(x, t, y)
    assert out_legacy.abs().max() > 0.1
    assert (out_legacy - out_new).abs().max() > 100 * tolerance(UNet.REASSOCIATION_FLOAT32).atol
    assert all(m.use_new_attention_order for m in new.modules() if isinstance(m, AttentionBlock))
    assert not any(m.use_new_attention_order for m in legacy.modules() if isinstance(m, AttentionBlock))


def test_new_order_is_the_legacy_order_of_permuted_qkv_rows() -> None:
    """An AttentionBlock in the new order equals a legacy one whose qkv rows are reordered from
    (q|k|v, heads, c) to (heads, q|k|v, c): the orders differ only in how the rows are read."""
    heads, c = 3, 32
    width = heads * c
    new = AttentionBlock(width, num_heads=heads, use_new_attention_order=True).double()
    randomize_all_parameters(new, seed=13)
    legacy = AttentionBlock(width, num_heads=heads).double()
    rows = torch.arange(3 * width).reshape(3, heads, c).transpose(0, 1).reshape(-1)  # legacy row i ← new row
    state = new.state_dict()
    state["qkv.weight"], state["qkv.bias"] = state["qkv.weight"][rows], state["qkv.bias"][rows]
    legacy.load_state_dict(state, strict=True)
    x = torch.randn(2, width, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        for backend in ("naive", "sdpa"):
            new.attention_backend = legacy.attention_backend = backend
            assert_close(new(x), legacy(x), tol=tolerance(UNet.FORWARD_FLOAT64), label=backend)
            assert (new(x) - x).abs().max() > 0.1  # the attention branch is not near zero


def test_use_new_attention_order_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="use_new_attention_order must be True"):
        tiny_unet(use_new_attention_order="yes")


def test_timestep_embedding_is_cos_then_sin_of_geometric_frequencies() -> None:
    t = torch.tensor([0.0, 1.0, 250.5, 999.0], dtype=torch.float64)
    emb = timestep_embedding(t, 6, dtype=torch.float64)
    freqs = torch.tensor([1.0, 10000.0 ** (-1 / 3), 10000.0 ** (-2 / 3)], dtype=torch.float64)
    expected = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], dim=1)
    assert_close(emb, expected, tol=tolerance(UNet.TIMESTEP_EMBEDDING_FLOAT64))
    odd = timestep_embedding(t, 7, dtype=torch.float64)
    assert odd.shape == (4, 7)
    assert torch.equal(odd[:, :6], emb)
    assert torch.count_nonzero(odd[:, 6]) == 0


def _conditioned_model(**overrides: Any) -> torch.nn.Module:
    model = tiny_unet(**overrides).eval()
    perturb_zero_parameters(model, seed=2)
    return model


def test_output_depends_on_timestep() -> None:
    model = _conditioned_model()
    x, _ = inputs(batch=2)
    with torch.no_grad():
        a = model(x, torch.tensor([10.0, 10.0]))
        b = model(x, torch.tensor([10.0, 900.0]))
    assert torch.equal(a[0], b[0])  # sample 0 unchanged: samples do not interact
    assert (a[1] - b[1]).abs().max() > 1e-3


@pytest.mark.parametrize("use_scale_shift_norm", [True, False])
def test_output_depends_on_class_label(use_scale_shift_norm: bool) -> None:
    model = _conditioned_model(num_classes=4, use_scale_shift_norm=use_scale_shift_norm)
    x, t = inputs(batch=2)
    with torch.no_grad():
        a = model(x, t, torch.tensor([0, 1]))
        b = model(x, t, torch.tensor([0, 3]))
    assert torch.equal(a[0], b[0])
    assert (a[1] - b[1]).abs().max() > 1e-3


def test_batch_elements_are_independent() -> None:
    """Each sample's output is the one it gets alone (no mixing across the batch in attention reshapes)."""
    model = _conditioned_model(num_classes=3)
    x, t = inputs(batch=3)
    y = torch.tensor([2, 0, 1])
    with torch.no_grad():
        batched = model(x, t, y)
        for i in range(3):
            single = model(x[i : i + 1], t[i : i + 1], y[i : i + 1])
            assert_close(
                batched[i : i + 1], single, tol=tolerance(UNet.REASSOCIATION_FLOAT32), label=f"sample {i}"
            )


@pytest.mark.parametrize(
    "overrides", [{"num_classes": 3}, {"resblock_updown": True, "use_scale_shift_norm": False}]
)
def test_gradients_reach_every_parameter(overrides: dict[str, Any]) -> None:
    model = _conditioned_model(**overrides).train()
    x, t = inputs(batch=2)
    y = torch.tensor([0, 2]) if "num_classes" in overrides else None
    model(x, t, y).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_dropout_is_active_only_in_training_mode() -> None:
    model = _conditioned_model(dropout=0.5)
    x, t = inputs(batch=1)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x, t), model(x, t))
        model.eval()
        assert torch.equal(model(x, t), model(x, t))
