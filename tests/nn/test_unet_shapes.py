"""Output shapes for size/flag combinations, zero output at initialisation, input validation."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from impl.factory import create_model
from impl.nn import UNetModel
from tests.nn._helpers import inputs, tiny_unet

# (create_model flags, input spatial size); tiny widths so GroupNorm(32) applies and CPU time stays small.
FLAG_CASES: list[tuple[dict[str, Any], tuple[int, int]]] = [
    ({"image_size": 32, "channel_mult": "1,1,1,1"}, (32, 32)),  # the 32 px level count, narrow widths
    ({"image_size": 16, "channel_mult": "1,2"}, (16, 16)),
    ({"image_size": 16, "channel_mult": "1,2", "learn_sigma": True}, (16, 16)),
    ({"image_size": 16, "channel_mult": "1,2", "class_cond": True, "num_classes": 10}, (16, 16)),
    ({"image_size": 16, "channel_mult": "1,2", "use_scale_shift_norm": False}, (16, 16)),
    ({"image_size": 16, "channel_mult": "1,2", "num_head_channels": 32, "num_heads": 4}, (16, 16)),
    ({"image_size": 16, "channel_mult": "1,2", "resblock_updown": True, "num_res_blocks": 2}, (16, 16)),
    (
        {"image_size": 16, "channel_mult": "1,2,2", "attention_resolutions": "8,4", "num_heads_upsample": 1},
        (16, 16),
    ),
    ({"image_size": 8, "channel_mult": "1", "attention_resolutions": ""}, (8, 8)),
    (  # attention at 12 px (downsample factor 1): what the default "16,8" used to build here
        {
            "image_size": 12,
            "channel_mult": "1,2,1",
            "attention_resolutions": "12",
            "in_channels": 1,
            "learn_sigma": True,
        },
        (12, 12),
    ),
    ({"image_size": 16, "channel_mult": "1,1.5", "num_channels": 64, "attention_resolutions": "16"}, (16, 8)),
]


def _case_id(case: tuple[dict[str, Any], tuple[int, int]]) -> str:
    return ",".join(f"{k}={v}" for k, v in case[0].items() if k != "image_size") + f"@{case[1]}"


@pytest.mark.parametrize("case", FLAG_CASES, ids=[_case_id(c) for c in FLAG_CASES])
def test_output_shape_and_zero_output_at_init(case: tuple[dict[str, Any], tuple[int, int]]) -> None:
    flags, size = case
    model = create_model(**{"num_channels": 32, "num_res_blocks": 1, "num_heads": 1, **flags})
    in_ch = flags.get("in_channels", 3)
    x, t = inputs(batch=2, channels=in_ch, size=size)
    y = torch.tensor([0, 3]) if flags.get("class_cond") else None
    with torch.no_grad():
        out = model(x, t, y)
    out_ch = in_ch * (2 if flags.get("learn_sigma") else 1)
    assert out.shape == (2, out_ch, *size)
    assert out.dtype == x.dtype
    # the last conv is zero-initialised, so the network starts as the zero function
    assert torch.count_nonzero(out) == 0


def test_exactly_the_output_heads_are_zero_initialised() -> None:
    model = tiny_unet()
    zero = {n for n, p in model.named_parameters() if not torch.any(p != 0)}
    heads = {
        n
        for n, _ in model.named_parameters()
        if ".out_layers.3." in n or ".proj_out." in n or n.startswith("out.2.")
    }
    norm_biases = {n for n, _ in model.named_parameters() if n.endswith("bias") and _is_norm(model, n)}
    assert zero == heads | norm_biases  # GroupNorm biases start at zero as in torch's default
    assert len(heads) > 0


def _is_norm(model: UNetModel, parameter_name: str) -> bool:
    module = model.get_submodule(parameter_name.rsplit(".", 1)[0])
    return isinstance(module, torch.nn.GroupNorm)


def test_integer_scalar_and_float_timesteps_are_accepted() -> None:
    model = tiny_unet()
    x, _ = inputs()
    with torch.no_grad():
        for t in (torch.tensor([1, 999]), torch.tensor(5), torch.tensor([0.5, 12.25], dtype=torch.float64)):
            assert model(x, t).shape == (2, 6, 8, 8)


@pytest.mark.parametrize("dims", [1, 3])
def test_other_spatial_dims_keep_the_shape(dims: int) -> None:
    model = tiny_unet(dims=dims)
    size = (8,) if dims == 1 else (2, 8, 8)
    x, t = inputs(size=size)
    with torch.no_grad():
        assert model(x, t).shape == (2, 6, *size)


def test_bad_inputs_raise_value_errors_naming_the_problem() -> None:
    model = tiny_unet()
    x, t = inputs()
    with pytest.raises(ValueError, match="y"):
        model(x, t, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(2, 3, 7, 7), t)
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.randn(2, 4, 8, 8), t)
    conditional = tiny_unet(num_classes=3)
    with pytest.raises(ValueError, match="y"):
        conditional(x, t)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_channels": 40}, "divisible by 32"),
        ({"num_heads": 3}, "num_heads"),
        ({"num_head_channels": 48}, "num_head_channels"),
        ({"attention_backend": "flash"}, "attention_backend"),
        ({"dims": 4}, "dims"),
        ({"num_res_blocks": 0}, "num_res_blocks"),
        ({"channel_mult": ()}, "channel_mult"),
        ({"dropout": 1.5}, "dropout"),
    ],
)
def test_bad_constructor_arguments_raise_value_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_unet(**kwargs)


def test_unet_model_positional_arguments_follow_the_original_order() -> None:
    model = UNetModel(3, 32, 3, 1, (2,), 0.0, (1, 2), True, 2, None, False, 2, -1, True)
    assert (model.channel_mult, model.num_heads, model.use_scale_shift_norm) == ((1, 2), 2, True)
