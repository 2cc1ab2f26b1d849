"""The state-dict layout equals the released checkpoints' (compat/*.tsv), built on the meta device."""

from __future__ import annotations

import pytest
import torch

from impl.factory import create_model
from impl.nn import UNetModel
from tests.nn._helpers import COMPAT_LAYOUTS, read_layout


def _meta_model(flags: dict[str, object]) -> UNetModel:
    with torch.device("meta"):
        return create_model(**flags)


@pytest.mark.parametrize("name", COMPAT_LAYOUTS)
def test_state_dict_names_and_shapes_equal_released_layout(name: str) -> None:
    layout = read_layout(name)
    model = _meta_model(layout.flags)
    shapes = {key: tuple(t.shape) for key, t in model.state_dict().items()}
    assert list(shapes) == list(layout.shapes), "names or their order differ from the released layout"
    mismatched = {k: (shapes[k], layout.shapes[k]) for k in shapes if shapes[k] != layout.shapes[k]}
    assert mismatched == {}


@pytest.mark.parametrize("name", COMPAT_LAYOUTS)
def test_parameter_and_tensor_counts_equal_released_model(name: str) -> None:
    layout = read_layout(name)
    model = _meta_model(layout.flags)
    assert len(model.state_dict()) == layout.num_tensors
    assert sum(p.numel() for p in model.parameters()) == layout.num_parameters


def test_paper_cifar10_model_has_52_546_438_parameters() -> None:
    model = _meta_model(
        {"image_size": 32, "num_channels": 128, "num_res_blocks": 3, "learn_sigma": True, "dropout": 0.3}
    )
    assert sum(p.numel() for p in model.parameters()) == 52_546_438


def test_layout_does_not_depend_on_runtime_options() -> None:
    """Backend, checkpointing and dropout change no parameter (so any of them loads the same checkpoint)."""
    base = {"image_size": 32, "num_channels": 32, "num_res_blocks": 1, "channel_mult": "1,2"}
    base["attention_resolutions"] = "16"  # the default "16,8": this 2-level net has no 8 px level
    plain = _meta_model(base)
    other = _meta_model({**base, "use_checkpoint": True, "dropout": 0.1})
    with torch.device("meta"):
        naive = create_model(**base, attention_backend="naive")
    expected = {k: tuple(v.shape) for k, v in plain.state_dict().items()}
    for model in (other, naive):
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
