"""Factories with the original flag names: ``create_model_and_diffusion`` and friends (script_util).

``model_and_diffusion_defaults()`` returns the original flags and defaults plus the extensions
``in_channels``, ``channel_mult``, ``num_classes``, ``num_head_channels`` and ``resblock_updown``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from impl.nn.unet import UNetModel

if TYPE_CHECKING:
    from impl.diffusion.respacing import SpacedDiffusion

__all__ = [
    "DEFAULT_CHANNEL_MULT",
    "NUM_CLASSES",
    "add_dict_to_argparser",
    "args_to_dict",
    "create_model",
    "create_model_and_diffusion",
    "model_and_diffusion_defaults",
    "model_flag_names",
    "parse_attention_resolutions",
    "parse_channel_mult",
    "str2bool",
]

NUM_CLASSES = 1000
"""Number of classes of a class-conditional model when ``num_classes`` is not given (ImageNet)."""

DEFAULT_CHANNEL_MULT: dict[int, tuple[int, ...]] = {
    32: (1, 2, 2, 2),
    64: (1, 2, 3, 4),
    256: (1, 1, 2, 2, 4, 4),
}
"""The paper's channel multipliers per image size [SPEC §8]; other sizes need an explicit ``channel_mult``."""

_MODEL_FLAGS = (
    "image_size",
    "num_channels",
    "num_res_blocks",
    "learn_sigma",
    "class_cond",
    "use_checkpoint",
    "attention_resolutions",
    "num_heads",
    "num_heads_upsample",
    "use_scale_shift_norm",
    "dropout",
    "in_channels",
    "channel_mult",
    "num_classes",
    "num_head_channels",
    "resblock_updown",
)


def model_and_diffusion_defaults() -> dict[str, Any]:
    """The original flags with their defaults, plus the model extensions (a fresh dict on every call)."""
    return {
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
        # extensions over the original flags
        "in_channels": 3,
        "channel_mult": "",
        "num_classes": NUM_CLASSES,
        "num_head_channels": -1,
        "resblock_updown": False,
    }


def model_flag_names() -> tuple[str, ...]:
    """The flags of :func:`model_and_diffusion_defaults` that :func:`create_model` takes."""
    return _MODEL_FLAGS


def parse_channel_mult(channel_mult: str | Sequence[float], image_size: int) -> tuple[float, ...]:
    """Channel multipliers: ``""`` picks the paper's (32/64/256 px), else ``"1,2,2"`` or numbers."""
    if image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size}")
    if isinstance(channel_mult, str):
        text = channel_mult.strip()
        if not text:
            if image_size not in DEFAULT_CHANNEL_MULT:
                raise ValueError(
                    f"image_size {image_size} has no default channel_mult (defaults exist for "
                    f"{sorted(DEFAULT_CHANNEL_MULT)}); pass channel_mult explicitly, "
                    "e.g. channel_mult='1,2,2'"
                )
            mult: tuple[float, ...] = DEFAULT_CHANNEL_MULT[image_size]
        else:
            try:
                mult = tuple(_parse_number(part) for part in text.split(","))
            except ValueError:
                raise ValueError(
                    "channel_mult must be comma-separated positive numbers like '1,2,2', "
                    f"got {channel_mult!r}"
                ) from None
    else:
        mult = tuple(channel_mult)
        if not mult:
            return parse_channel_mult("", image_size)
    if any(m <= 0 for m in mult):
        raise ValueError(f"channel_mult entries must be positive, got {mult}")
    factor = 2 ** (len(mult) - 1)
    if image_size % factor:
        raise ValueError(
            f"image_size {image_size} must be divisible by 2^(len(channel_mult)-1) = {factor} "
            f"for channel_mult {mult}"
        )
    return mult


def _parse_number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


def parse_attention_resolutions(
    attention_resolutions: str | Iterable[int], image_size: int, num_levels: int | None = None
) -> tuple[int, ...]:
    """Resolutions (``"16,8"``) to downsample factors ``image_size // res``, as the original does.

    An empty string means no attention blocks outside the middle block.  With ``num_levels`` (the length
    of the channel multipliers) every resolution must be one the network has, ``image_size / 2^k`` for
    k < ``num_levels``; any other value (3 at 8 px, 16 at 8 px) is a ValueError listing the allowed ones,
    since it would silently put attention elsewhere or nowhere.
    """
    if isinstance(attention_resolutions, str):
        parts = [p.strip() for p in attention_resolutions.split(",") if p.strip()]
        try:
            resolutions = [int(p) for p in parts]
        except ValueError:
            raise ValueError(
                "attention_resolutions must be comma-separated positive integers like '16,8', "
                f"got {attention_resolutions!r}"
            ) from None
    else:
        resolutions = [int(r) for r in attention_resolutions]
    if any(r < 1 for r in resolutions):
        raise ValueError(f"attention_resolutions must be positive integers, got {resolutions}")
    if num_levels is not None:
        allowed = [image_size // 2**k for k in range(num_levels) if image_size % 2**k == 0]
        wrong = [r for r in resolutions if r not in allowed]
        if wrong:
            raise ValueError(
                f"attention_resolutions {wrong} are not resolutions of the network at image_size "
                f"{image_size} with {num_levels} levels; allowed: {', '.join(map(str, allowed))} "
                "(or '' for attention only in the middle block)"
            )
    return tuple(image_size // r for r in resolutions)


def create_model(
    image_size: int = 64,
    num_channels: int = 128,
    num_res_blocks: int = 2,
    learn_sigma: bool = False,
    class_cond: bool = False,
    use_checkpoint: bool = False,
    attention_resolutions: str | Iterable[int] = "16,8",
    num_heads: int = 4,
    num_heads_upsample: int = -1,
    use_scale_shift_norm: bool = True,
    dropout: float = 0.0,
    *,
    in_channels: int = 3,
    channel_mult: str | Sequence[float] = "",
    num_classes: int | None = None,
    num_head_channels: int = -1,
    resblock_updown: bool = False,
    attention_backend: str = "sdpa",
) -> UNetModel:
    """The U-Net for the original flags [SPEC §8].

    The output has ``in_channels`` channels, twice that with ``learn_sigma``.  With ``class_cond`` the model
    takes labels of ``num_classes`` classes (default 1000, as the original).
    """
    if in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels}")
    mult = parse_channel_mult(channel_mult, image_size)
    attention_ds = parse_attention_resolutions(attention_resolutions, image_size, len(mult))
    classes = (num_classes if num_classes is not None else NUM_CLASSES) if class_cond else None
    return UNetModel(
        in_channels=in_channels,
        model_channels=num_channels,
        out_channels=in_channels * (2 if learn_sigma else 1),
        num_res_blocks=num_res_blocks,
        attention_resolutions=attention_ds,
        dropout=dropout,
        channel_mult=mult,
        num_classes=classes,
        use_checkpoint=use_checkpoint,
        num_heads=num_heads,
        num_heads_upsample=num_heads_upsample,
        use_scale_shift_norm=use_scale_shift_norm,
        num_head_channels=num_head_channels,
        resblock_updown=resblock_updown,
        attention_backend=attention_backend,
    )


def create_model_and_diffusion(
    *,
    image_size: int = 64,
    class_cond: bool = False,
    learn_sigma: bool = False,
    sigma_small: bool = False,
    num_channels: int = 128,
    num_res_blocks: int = 2,
    num_heads: int = 4,
    num_heads_upsample: int = -1,
    attention_resolutions: str | Iterable[int] = "16,8",
    dropout: float = 0.0,
    diffusion_steps: int = 1000,
    noise_schedule: str = "linear",
    timestep_respacing: str = "",
    use_kl: bool = False,
    predict_xstart: bool = False,
    rescale_timesteps: bool = True,
    rescale_learned_sigmas: bool = True,
    use_checkpoint: bool = False,
    use_scale_shift_norm: bool = True,
    in_channels: int = 3,
    channel_mult: str | Sequence[float] = "",
    num_classes: int | None = NUM_CLASSES,
    num_head_channels: int = -1,
    resblock_updown: bool = False,
    attention_backend: str = "sdpa",
) -> tuple[UNetModel, SpacedDiffusion]:
    """``(model, diffusion)`` for the original flags; call it as ``create_model_and_diffusion(**flags)``."""
    from impl.diffusion.factory import create_gaussian_diffusion

    model = create_model(
        image_size,
        num_channels,
        num_res_blocks,
        learn_sigma=learn_sigma,
        class_cond=class_cond,
        use_checkpoint=use_checkpoint,
        attention_resolutions=attention_resolutions,
        num_heads=num_heads,
        num_heads_upsample=num_heads_upsample,
        use_scale_shift_norm=use_scale_shift_norm,
        dropout=dropout,
        in_channels=in_channels,
        channel_mult=channel_mult,
        num_classes=num_classes,
        num_head_channels=num_head_channels,
        resblock_updown=resblock_updown,
        attention_backend=attention_backend,
    )
    diffusion = create_gaussian_diffusion(
        steps=diffusion_steps,
        learn_sigma=learn_sigma,
        sigma_small=sigma_small,
        noise_schedule=noise_schedule,
        use_kl=use_kl,
        predict_xstart=predict_xstart,
        rescale_timesteps=rescale_timesteps,
        rescale_learned_sigmas=rescale_learned_sigmas,
        timestep_respacing=timestep_respacing,
    )
    return model, diffusion


def str2bool(value: str | bool) -> bool:
    """Parse a command-line boolean: yes/true/t/y/1 or no/false/f/n/0 (any case)."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("yes", "true", "t", "y", "1"):
        return True
    if lowered in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"boolean value expected (true/false, yes/no, 1/0), got {value!r}")


def add_dict_to_argparser(parser: argparse.ArgumentParser, default_dict: Mapping[str, Any]) -> None:
    """Add ``--key`` for every entry, typed by its default (``str2bool`` for bools, ``str`` for ``None``)."""
    for key, value in default_dict.items():
        arg_type: Any
        if value is None:
            arg_type = str
        elif isinstance(value, bool):
            arg_type = str2bool
        else:
            arg_type = type(value)
        parser.add_argument(f"--{key}", default=value, type=arg_type)


def args_to_dict(args: argparse.Namespace, keys: Iterable[str]) -> dict[str, Any]:
    """``{key: args.key}`` for the given keys."""
    return {key: getattr(args, key) for key in keys}
