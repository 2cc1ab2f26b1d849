"""The script_util-style factories: original flag names/defaults, channel multipliers, argparse helpers."""

from __future__ import annotations

import argparse

import pytest
import torch

from impl.factory import (
    add_dict_to_argparser,
    args_to_dict,
    build_model_and_diffusion,
    create_model,
    create_model_and_diffusion,
    model_and_diffusion_defaults,
    model_flag_names,
    parse_attention_resolutions,
    parse_channel_mult,
    str2bool,
    train_model_defaults,
)
from impl.nn import AttentionBlock

ORIGINAL_DEFAULTS = {
    "image_size": 64,
    "num_channels": 128,
    "num_res_blocks": 2,
    "num_heads": 4,
    "num_heads_upsample": -1,
    "attention_resolutions": "16,8",
    "dropout": 0.0,
    "learn_sigma": False,
    "sigma_small": False,
    "class_cond": False,
    "diffusion_steps": 1000,
    "noise_schedule": "linear",
    "timestep_respacing": "",
    "use_kl": False,
    "predict_xstart": False,
    "rescale_timesteps": True,
    "rescale_learned_sigmas": True,
    "use_checkpoint": False,
    "use_scale_shift_norm": True,
}


def test_defaults_are_the_original_flags_plus_documented_extensions() -> None:
    defaults = model_and_diffusion_defaults()
    assert {k: defaults[k] for k in ORIGINAL_DEFAULTS} == ORIGINAL_DEFAULTS
    extensions = set(defaults) - set(ORIGINAL_DEFAULTS)
    assert extensions == {
        "in_channels",
        "channel_mult",
        "num_classes",
        "num_head_channels",
        "resblock_updown",
        # guided-diffusion's q/k/v split of attention (docs/unet.md): False keeps the original function
        "use_new_attention_order",
        # the objective options of docs/diffusion.md ("Objective options"): their defaults keep the original
        "predict_v",
        "loss_weighting",
        "min_snr_gamma",
        "vlb_weight",
        # classifier-free guidance's null label (docs/guidance.md): 0 keeps the original layout
        "class_dropout_prob",
    }
    assert defaults["class_dropout_prob"] == 0.0
    assert defaults["use_new_attention_order"] is False
    assert (defaults["predict_v"], defaults["loss_weighting"], defaults["vlb_weight"]) == (False, "none", "")
    assert set(model_flag_names()) <= set(defaults)
    defaults["image_size"] = 1
    assert model_and_diffusion_defaults()["image_size"] == 64  # a fresh dict each call


@pytest.mark.parametrize(
    ("image_size", "expected"), [(32, (1, 2, 2, 2)), (64, (1, 2, 3, 4)), (256, (1, 1, 2, 2, 4, 4))]
)
def test_paper_channel_multipliers_per_image_size(image_size: int, expected: tuple[int, ...]) -> None:
    assert parse_channel_mult("", image_size) == expected
    with torch.device("meta"):
        assert create_model(image_size=image_size).channel_mult == expected


def test_other_image_sizes_need_an_explicit_channel_mult() -> None:
    with pytest.raises(ValueError, match="channel_mult"):
        create_model(image_size=28)
    assert parse_channel_mult("1,2,2", 28) == (1, 2, 2)
    assert parse_channel_mult((1, 2.5), 28) == (1, 2.5)
    assert parse_channel_mult("1, 1.5", 8) == (1, 1.5)
    with pytest.raises(ValueError, match="divisible"):
        parse_channel_mult("1,2,2,2", 28)
    with pytest.raises(ValueError, match="channel_mult"):
        parse_channel_mult("1,x", 32)
    with pytest.raises(ValueError, match="positive"):
        parse_channel_mult("1,0", 32)


def test_attention_resolutions_become_downsample_factors() -> None:
    assert parse_attention_resolutions("16,8", 32) == (2, 4)
    assert parse_attention_resolutions("16,8", 64) == (4, 8)
    assert parse_attention_resolutions("", 64) == ()
    assert parse_attention_resolutions([32], 64) == (2,)
    with pytest.raises(ValueError, match="attention_resolutions"):
        parse_attention_resolutions("16;8", 64)


def test_create_model_maps_flags_to_the_network() -> None:
    with torch.device("meta"):
        model = create_model(
            image_size=16,
            num_channels=32,
            num_res_blocks=1,
            learn_sigma=True,
            class_cond=True,
            channel_mult="1,2",
            in_channels=1,
            num_classes=10,
            num_heads=2,
            num_heads_upsample=1,
        )
    assert (model.in_channels, model.out_channels, model.num_classes) == (1, 2, 10)
    assert model.attention_resolutions == frozenset({1, 2})
    assert (model.num_heads, model.num_heads_upsample) == (2, 1)
    with torch.device("meta"):
        assert create_model(class_cond=True).num_classes == 1000


def test_create_model_and_diffusion_returns_the_pair() -> None:
    flags = {**model_and_diffusion_defaults(), "image_size": 8, "num_channels": 32, "channel_mult": "1,2"}
    flags["attention_resolutions"] = "8"  # the default "16,8" names a 16 px level an 8 px net lacks
    flags.update(num_res_blocks=1, learn_sigma=True, diffusion_steps=50, timestep_respacing="10")
    model, diffusion = create_model_and_diffusion(**flags)
    assert model.out_channels == 6
    assert diffusion.num_timesteps == 10
    with pytest.raises(TypeError):
        create_model_and_diffusion(**flags, not_a_flag=1)


def test_argparser_round_trip_uses_str2bool_for_booleans() -> None:
    parser = argparse.ArgumentParser()
    add_dict_to_argparser(parser, {**model_and_diffusion_defaults(), "maybe": None})
    args = parser.parse_args(
        ["--learn_sigma", "True", "--class_cond", "no", "--image_size", "32", "--dropout", "0.3"]
    )
    flags = args_to_dict(args, model_and_diffusion_defaults().keys())
    assert flags["learn_sigma"] is True and flags["class_cond"] is False
    assert flags["image_size"] == 32 and flags["dropout"] == 0.3
    assert args.maybe is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--learn_sigma", "maybe"])


@pytest.mark.parametrize(
    ("text", "value"), [("yes", True), ("T", True), ("1", True), ("n", False), ("FALSE", False)]
)
def test_str2bool(text: str, value: bool) -> None:
    assert str2bool(text) is value


def _attention_orders(model: torch.nn.Module) -> set[bool]:
    return {m.use_new_attention_order for m in model.modules() if isinstance(m, AttentionBlock)}


def test_use_new_attention_order_reaches_every_attention_block() -> None:
    flags = {**model_and_diffusion_defaults(), "image_size": 8, "num_channels": 32, "channel_mult": "1,2"}
    flags.update(attention_resolutions="4", num_res_blocks=1, num_heads=2)
    assert "use_new_attention_order" in model_flag_names()
    with torch.device("meta"):
        assert _attention_orders(create_model_and_diffusion(**flags)[0]) == {False}
        new_flags = {**flags, "use_new_attention_order": True}
        assert _attention_orders(create_model_and_diffusion(**new_flags)[0]) == {True}
        model_flags = {k: new_flags[k] for k in model_flag_names()}
        assert _attention_orders(create_model(**model_flags)) == {True}
        # the original positional signature is unchanged: image_size, num_channels, num_res_blocks, ...
        positional = create_model(8, 32, 1, True, False, False, "4", 2, -1, True, 0.0, channel_mult="1,2")
        assert _attention_orders(positional) == {False}
        assert positional.out_channels == 6


def test_a_run_config_recorded_before_the_flag_builds_the_legacy_order() -> None:
    """A run's model_flags without use_new_attention_order (older runs) rebuild the order they trained."""
    flags = {**train_model_defaults(), "in_channels": 1, "num_classes": 10}
    del flags["use_new_attention_order"]
    with torch.device("meta"):
        model, _ = build_model_and_diffusion(flags)
        assert _attention_orders(model) == {False}
        model, _ = build_model_and_diffusion({**flags, "use_new_attention_order": True})
        assert _attention_orders(model) == {True}


def test_argparser_takes_use_new_attention_order() -> None:
    parser = argparse.ArgumentParser()
    add_dict_to_argparser(parser, model_and_diffusion_defaults())
    assert parser.parse_args([]).use_new_attention_order is False
    assert parser.parse_args(["--use_new_attention_order", "True"]).use_new_attention_order is True
