"""The network computes SPEC §8's function: an independent functional forward, conditioning, gradients."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from impl.nn import timestep_embedding
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
