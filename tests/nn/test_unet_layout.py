"""The state-dict layout equals the released checkpoints' (compat/*.tsv), built on the meta device."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from impl.factory import (
    add_dict_to_argparser,
    create_model,
    load_checkpoint,
    model_and_diffusion_defaults,
    model_flag_names,
)
from impl.nn import AttentionBlock, CheckpointMismatchError, UNetModel
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


GUIDED_64X64_MODEL_FLAGS = (
    "--attention_resolutions 32,16,8 --class_cond True --image_size 64 --learn_sigma True --num_channels 192 "
    "--num_head_channels 64 --num_res_blocks 3 --resblock_updown True --use_new_attention_order True "
    "--use_scale_shift_norm True"
)
"""guided-diffusion's README flags of their released 64×64 class-conditional model (1000 classes)."""

GUIDED_64X64_PARAMETERS = 295_904_454
"""What this library builds for those flags (541 tensors).  No layout file of the released
``64x64_diffusion.pt`` is in ``../shared/compat/``: the count is not checked against the real file."""


def _parsed_model_flags(command_line: str) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    add_dict_to_argparser(parser, model_and_diffusion_defaults())
    args = parser.parse_args(command_line.split())
    return {k: getattr(args, k) for k in model_flag_names()}


def _strict_file(model: nn.Module, path: Path) -> Path:
    """A .pt state dict with the model's names, shapes and dtypes (one stored element per tensor)."""
    state = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in model.state_dict().items()}
    torch.save(state, path)
    return path


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_guided_diffusion_64px_model_flags_build_and_round_trip_strictly(tmp_path: Path) -> None:
    flags = _parsed_model_flags(GUIDED_64X64_MODEL_FLAGS)
    assert flags["use_new_attention_order"] is True
    model = _meta_model(flags)
    legacy = _meta_model({**flags, "use_new_attention_order": False})
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in legacy.state_dict().items()}
    assert list(shapes) == list(legacy.state_dict())
    assert len(shapes) == 541
    assert sum(p.numel() for p in model.parameters()) == GUIDED_64X64_PARAMETERS
    assert shapes["label_emb.weight"] == (1000, 768) and shapes["out.2.weight"] == (6, 192, 3, 3)
    blocks = [m for m in model.modules() if isinstance(m, AttentionBlock)]
    assert {b.num_heads for b in blocks} == {192 * 2 // 64, 192 * 3 // 64, 192 * 4 // 64}  # 64 per head
    assert all(b.use_new_attention_order for b in blocks)

    path = _strict_file(model, tmp_path / "64x64_diffusion.pt")
    with torch.device("meta"):
        loaded = load_checkpoint(path, **flags)  # strict: any missing, unexpected or mis-shaped key raises
        # or: the architecture read off the weights, with the flags the weights do not record
        inferred = load_checkpoint(path, num_head_channels=64, use_new_attention_order=True)
    for other in (loaded, inferred):
        assert {k: tuple(v.shape) for k, v in other.state_dict().items()} == shapes
        assert all(m.use_new_attention_order for m in other.modules() if isinstance(m, AttentionBlock))
    with pytest.raises(CheckpointMismatchError, match="resblock_updown"), torch.device("meta"):
        load_checkpoint(path, **{**flags, "resblock_updown": False})


def test_use_new_attention_order_changes_no_parameter() -> None:
    base = {"image_size": 32, "num_channels": 64, "num_res_blocks": 1, "channel_mult": "1,2"}
    base.update(attention_resolutions="16", num_heads=2)
    plain = _meta_model(base)
    new = _meta_model({**base, "use_new_attention_order": True})
    assert [(k, v.shape) for k, v in new.state_dict().items()] == [
        (k, v.shape) for k, v in plain.state_dict().items()
    ]
