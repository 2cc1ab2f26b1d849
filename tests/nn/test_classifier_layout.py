"""The classifier state dict equals the released guided-diffusion layouts (compat/classifier_*.tsv)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from impl.factory import classifier_defaults, create_classifier
from impl.nn import EncoderUNetModel
from tests.nn._helpers import COMPAT_DIR

RELEASED = ("classifier_64x64", "classifier_128x128", "classifier_256x256")


def _read(name: str) -> tuple[dict[str, Any], int, list[str]]:
    """The flags and parameter count of the header line, and the ``name<TAB>d1,d2,…`` rows."""
    lines = (COMPAT_DIR / f"{name}.tsv").read_text().splitlines()
    header = lines[0]
    flags_text = header.split("flags ", 1)[1].rsplit(";", 1)[0]
    count = int(header.rsplit(";", 1)[1].split()[0])
    assert lines[1] == "name\tshape"
    return json.loads(flags_text), count, lines[2:]


def _meta(**flags: Any) -> EncoderUNetModel:
    with torch.device("meta"):
        return create_classifier(**flags)


def _rows(model: EncoderUNetModel) -> list[str]:
    return [f"{k}\t{','.join(map(str, v.shape))}" for k, v in model.state_dict().items()]


@pytest.mark.parametrize("name", RELEASED)
def test_state_dict_equals_released_layout_line_by_line(name: str) -> None:
    flags, _, rows = _read(name)
    got = _rows(_meta(**flags))
    for i, (actual, expected) in enumerate(zip(got, rows, strict=False)):
        assert actual == expected, f"row {i}"
    assert len(got) == len(rows)


@pytest.mark.parametrize("name", RELEASED)
def test_parameter_count_equals_released_classifier(name: str) -> None:
    flags, count, _ = _read(name)
    assert sum(p.numel() for p in _meta(**flags).parameters()) == count


def test_defaults_are_guided_diffusions_and_64px_release_differs_only_in_depth() -> None:
    flags, _, _ = _read("classifier_64x64")
    defaults = classifier_defaults()
    assert defaults["classifier_use_fp16"] is False
    assert {k: v for k, v in flags.items() if defaults[k] != v} == {"classifier_depth": 4}


def test_fp16_flag_and_backend_change_no_parameter() -> None:
    base = _rows(_meta(image_size=64))
    assert _rows(_meta(image_size=64, classifier_use_fp16=True)) == base
    assert _rows(_meta(image_size=64, attention_backend="naive")) == base


def _small(pool: str, **overrides: Any) -> EncoderUNetModel:
    flags: dict[str, Any] = {
        "image_size": 8,
        "classifier_width": 32,
        "classifier_depth": 1,
        "classifier_attention_resolutions": "4",
        "classifier_pool": pool,
        "num_classes": 10,
        "num_head_channels": 32,
    }
    return _meta(**{**flags, **overrides})


def test_head_layouts_per_pool() -> None:
    """Hand-derived: 8 px, widths 32/64 (mult 1,2), depth 1 → input features 32+32+32+64, middle 64."""
    features = 32 + 32 + 32 + 64 + 64

    def head(model: EncoderUNetModel) -> list[str]:
        return [row for row in _rows(model) if row.startswith("out.")]

    assert head(_small("adaptive")) == [
        "out.0.weight\t64",
        "out.0.bias\t64",
        "out.3.weight\t10,64,1,1",
        "out.3.bias\t10",
    ]
    assert head(_small("attention")) == [
        "out.0.weight\t64",
        "out.0.bias\t64",
        "out.2.positional_embedding\t64,17",  # 4×4 positions at the lowest resolution + the mean token
        "out.2.qkv_proj.weight\t192,64,1",
        "out.2.qkv_proj.bias\t192",
        "out.2.c_proj.weight\t10,64,1",
        "out.2.c_proj.bias\t10",
    ]
    assert head(_small("spatial")) == [
        f"out.0.weight\t2048,{features}",
        "out.0.bias\t2048",
        "out.2.weight\t10,2048",
        "out.2.bias\t10",
    ]
    assert head(_small("spatial_v2")) == [
        f"out.0.weight\t2048,{features}",
        "out.0.bias\t2048",
        "out.1.weight\t2048",
        "out.1.bias\t2048",
        "out.3.weight\t10,2048",
        "out.3.bias\t10",
    ]


@pytest.mark.parametrize(("size", "levels"), [(8, 2), (32, 4), (512, 7)])
def test_channel_multipliers_of_the_sizes(size: int, levels: int) -> None:
    model = _meta(image_size=size, classifier_attention_resolutions=str(size // 2))
    assert len(model.channel_mult) == levels


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        ({"classifier_pool": "max"}, "pool must be one of"),
        ({"image_size": 48}, "no default classifier channel_mult"),
        ({"classifier_attention_resolutions": "3"}, "attention_resolutions"),
        ({"classifier_use_fp16": "yes"}, "classifier_use_fp16 must be True or False"),
        ({"num_classes": 0}, "num_classes must be a positive integer"),
        ({"classifier_width": 0}, "classifier_width must be a positive integer"),
        ({"classifier_depth": 0}, "classifier_depth must be a positive integer"),
        ({"classifier_pool": "attention", "num_head_channels": -1}, "needs num_head_channels"),
    ],
)
def test_bad_flags_are_value_errors_naming_the_flag(flags: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _meta(**flags)
