"""Saving/reloading weights (.pt, .safetensors), architecture inference, and mismatch diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from impl import load_checkpoint
from impl.factory import create_model
from impl.nn import (
    CheckpointMismatchError,
    UNetModel,
    infer_unet_config,
    read_state_dict,
    save_checkpoint,
)
from tests.nn._helpers import COMPAT_LAYOUTS, inputs, randomize_all_parameters, read_layout

SMALL_FLAGS: dict[str, Any] = {
    "image_size": 16,
    "num_channels": 32,
    "num_res_blocks": 1,
    "channel_mult": "1,2",
    "attention_resolutions": "8",
    "learn_sigma": True,
    "num_heads": 2,
}


def _trained_looking_model(**flags: Any) -> UNetModel:
    model = create_model(**{**SMALL_FLAGS, **flags}).eval()
    randomize_all_parameters(model, seed=3)
    return model


def _meta_state(layout_name: str) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in read_layout(layout_name).shapes.items()}


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_saved_and_reloaded_model_gives_identical_outputs(tmp_path: Path, suffix: str) -> None:
    model = _trained_looking_model()
    path = save_checkpoint(model, tmp_path / f"weights{suffix}")
    x, t = inputs(size=(16, 16))
    with torch.no_grad():
        expected = model(x, t)
        from_flags = load_checkpoint(path, **SMALL_FLAGS)
        inferred = load_checkpoint(path, num_heads=2)
        into = load_checkpoint(path, create_model(**SMALL_FLAGS))
        for loaded in (from_flags, inferred, into):
            assert torch.equal(loaded(x, t), expected)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_channels_last_model_saves_to_safetensors(tmp_path: Path) -> None:
    model = _trained_looking_model().to(memory_format=torch.channels_last)
    path = save_checkpoint(model, tmp_path / "cl.safetensors", metadata={"flags": "test"})
    state = read_state_dict(path)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_nested_and_prefixed_state_dicts_are_unwrapped(tmp_path: Path) -> None:
    model = _trained_looking_model()
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"model": state, "step": torch.tensor(5)}, tmp_path / "train.pt")
    loaded = load_checkpoint(tmp_path / "train.pt", **SMALL_FLAGS)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    torch.save({"model": model.state_dict(), "ema": model.state_dict()}, tmp_path / "both.pt")
    with pytest.raises(ValueError, match="key="):
        read_state_dict(tmp_path / "both.pt")
    assert set(read_state_dict(tmp_path / "both.pt", key="ema")) == set(model.state_dict())


@pytest.mark.parametrize("name", COMPAT_LAYOUTS)
def test_architecture_is_inferred_from_released_layouts(name: str) -> None:
    layout = read_layout(name)
    config = infer_unet_config(layout.shapes)
    with torch.device("meta"):
        expected = create_model(**layout.flags)
        rebuilt = UNetModel(**config)
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == layout.shapes
    assert rebuilt.attention_resolutions == expected.attention_resolutions
    assert rebuilt.channel_mult == expected.channel_mult
    assert rebuilt.num_heads == 4


@pytest.mark.parametrize(
    ("wrong_flags", "expected_hint"),
    [
        ({"learn_sigma": False}, "--learn_sigma"),
        ({"class_cond": True}, "--class_cond False"),
        ({"num_res_blocks": 2}, "--num_res_blocks"),
        ({"image_size": 64}, "--channel_mult / --image_size"),
        ({"attention_resolutions": "16"}, "--attention_resolutions"),
        ({"use_scale_shift_norm": False}, "--use_scale_shift_norm True"),
        ({"num_channels": 64}, "--num_channels"),
    ],
)
def test_mismatch_names_the_flag_for_the_released_cifar10_layout(
    wrong_flags: dict[str, Any], expected_hint: str
) -> None:
    from impl.nn.checkpoint_io import diagnose_mismatch

    flags = {**read_layout("unet_cifar10_32").flags, **wrong_flags}
    with torch.device("meta"):
        model = create_model(**flags)
    message = diagnose_mismatch(model, _meta_state("unet_cifar10_32"))
    assert message is not None
    assert expected_hint in message


def test_mismatch_for_a_conditional_checkpoint_suggests_class_cond(tmp_path: Path) -> None:
    path = save_checkpoint(_trained_looking_model(class_cond=True, num_classes=7), tmp_path / "c.safetensors")
    with pytest.raises(CheckpointMismatchError, match="--class_cond True --num_classes 7"):
        load_checkpoint(path, **SMALL_FLAGS)


def test_mismatch_error_lists_keys_and_shapes(tmp_path: Path) -> None:
    path = save_checkpoint(_trained_looking_model(), tmp_path / "w.pt")
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(path, **{**SMALL_FLAGS, "learn_sigma": False})
    text = str(info.value)
    assert "out.2.weight (checkpoint (6, 32, 3, 3), model (3, 32, 3, 3))" in text
    assert "--learn_sigma" in text and str(path) in text


def test_pattern_hints_cover_non_unet_models() -> None:
    """Without a UNetModel to compare configurations, the hints come from key patterns."""
    from impl.nn.checkpoint_io import diagnose_mismatch

    model = _trained_looking_model()
    wrapper = torch.nn.Module()
    for name, child in model.named_children():
        wrapper.add_module(name, child)
    state = dict(model.state_dict())
    state["label_emb.weight"] = torch.zeros(10, 128)
    message = diagnose_mismatch(wrapper, state)
    assert message is not None and "--class_cond True --num_classes 10" in message


def test_bad_arguments_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.pt")
    path = save_checkpoint(_trained_looking_model(), tmp_path / "w.pt")
    with pytest.raises(ValueError, match="either model or flags"):
        load_checkpoint(path, create_model(**SMALL_FLAGS), image_size=16)
    with pytest.raises(ValueError, match="unknown flags"):
        load_checkpoint(path, image_sise=16)
    with pytest.raises(ValueError, match="metadata"):
        save_checkpoint({"a": torch.zeros(1)}, tmp_path / "m.pt", metadata={"k": "v"})
    with pytest.raises(ValueError, match="not an improved-diffusion U-Net"):
        infer_unet_config({"a": torch.zeros(1)})
