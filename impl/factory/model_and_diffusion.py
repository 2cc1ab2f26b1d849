"""The original's model_and_diffusion flags: their defaults, `create_model`, `create_model_and_diffusion`.

``model_and_diffusion_defaults()`` returns the original flags and defaults plus the extensions
``in_channels``, ``channel_mult``, ``num_classes``, ``num_head_channels``, ``resblock_updown``,
``use_new_attention_order`` (guided-diffusion's q/k/v split, docs/unet.md) and ``class_dropout_prob``
(classifier-free guidance: > 0 adds the learned null label, docs/guidance.md).
``load_checkpoint`` builds the U-Net a checkpoint needs (from these flags, or read off the weights) and
loads it; the factory sits above `impl.nn` and `impl.diffusion`, which know nothing of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from impl.diffusion.respacing import SpacedDiffusion
from impl.factory.diffusion import create_gaussian_diffusion
from impl.nn.checkpoint_io import infer_unet_config, load_state_strictly, read_state_dict
from impl.nn.unet import UNetModel

__all__ = [
    "DEFAULT_CHANNEL_MULT",
    "NUM_CLASSES",
    "check_class_dropout_prob",
    "create_model",
    "create_model_and_diffusion",
    "load_checkpoint",
    "model_and_diffusion_defaults",
    "model_flag_names",
    "parse_attention_resolutions",
    "parse_channel_mult",
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
    "use_new_attention_order",
    "class_dropout_prob",
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
        "use_new_attention_order": False,
        "predict_v": False,
        "loss_weighting": "none",
        "min_snr_gamma": 5.0,
        "vlb_weight": "",
        "class_dropout_prob": 0.0,
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


def check_class_dropout_prob(class_dropout_prob: float, class_cond: bool) -> float:
    """``class_dropout_prob`` p as a float: 0 <= p < 1, and p > 0 only with ``class_cond`` (else a
    ValueError naming the flag)."""
    p = class_dropout_prob
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p < 1.0:
        raise ValueError(
            f"--class_dropout_prob must be a number in [0, 1) (the chance a training label becomes the null "
            f"label; 0: no null label), got {p!r}"
        )
    if p > 0 and not class_cond:
        raise ValueError(
            f"--class_dropout_prob {p} needs a class-conditional model (--class_cond True): it drops class "
            "labels to a learned null label for classifier-free guidance"
        )
    return float(p)


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
    class_dropout_prob: float = 0.0,
    use_new_attention_order: bool = False,
) -> UNetModel:
    """The U-Net for the original flags [SPEC §8].

    The output has ``in_channels`` channels, twice that with ``learn_sigma``.  With ``class_cond`` the model
    takes labels of ``num_classes`` classes (default 1000, as the original); with ``class_dropout_prob`` > 0
    also the learned null label ``num_classes`` (the label embedding gets ``num_classes + 1`` rows).
    ``use_new_attention_order`` (guided-diffusion's flag) splits the attention ``qkv`` channels as
    ``(q|k|v, heads, C/heads)`` instead of the legacy ``(heads, q|k|v, C/heads)``: same parameters,
    another function.
    """
    if in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels}")
    null_rows = 1 if check_class_dropout_prob(class_dropout_prob, class_cond) > 0 else 0
    mult = parse_channel_mult(channel_mult, image_size)
    attention_ds = parse_attention_resolutions(attention_resolutions, image_size, len(mult))
    classes = (num_classes if num_classes is not None else NUM_CLASSES) + null_rows if class_cond else None
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
        use_new_attention_order=use_new_attention_order,
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
    predict_v: bool = False,
    loss_weighting: str = "none",
    min_snr_gamma: float = 5.0,
    vlb_weight: float | str | None = None,
    class_dropout_prob: float = 0.0,
    use_new_attention_order: bool = False,
) -> tuple[UNetModel, SpacedDiffusion]:
    """``(model, diffusion)`` for the original flags; call it as ``create_model_and_diffusion(**flags)``."""
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
        class_dropout_prob=class_dropout_prob,
        use_new_attention_order=use_new_attention_order,
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
        predict_v=predict_v,
        loss_weighting=loss_weighting,
        min_snr_gamma=min_snr_gamma,
        vlb_weight=vlb_weight,
    )
    return model, diffusion


# Model flags that change no parameter: they may be given together with an architecture read off the weights.
_RUNTIME_FLAGS = frozenset(
    {
        "num_heads",
        "num_heads_upsample",
        "num_head_channels",
        "dropout",
        "use_checkpoint",
        "attention_backend",
        "use_new_attention_order",
    }
)


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    *,
    map_location: str | torch.device = "cpu",
    key: str | None = None,
    **flags: Any,
) -> nn.Module:
    """Load a state dict file into ``model``, or into a U-Net built for it, and return the model.

    - ``model`` given: the weights are loaded into it (no ``flags`` then).
    - ``flags`` given (the original ``create_model`` flags, e.g. ``image_size=32, num_channels=128,
      num_res_blocks=3, learn_sigma=True``; missing ones take :func:`model_and_diffusion_defaults`,
      diffusion flags are ignored): the model is ``create_model(**flags)``.
    - neither (or only flags that change no parameter: ``num_heads``, ``num_head_channels``,
      ``num_heads_upsample``, ``dropout``, ``use_checkpoint``, ``attention_backend``,
      ``use_new_attention_order``): the architecture is read off the checkpoint by
      :func:`impl.nn.infer_unet_config` (4 heads and the legacy attention order unless given; neither is
      stored in the weights).

    Loading is strict: any missing/unexpected key or shape mismatch raises
    :class:`impl.nn.CheckpointMismatchError` naming the flags that probably differ.  The model is returned
    in eval mode on its original device.
    """
    state = read_state_dict(path, map_location=map_location, key=key)
    if model is not None:
        if flags:
            raise ValueError(f"pass either model or flags, not both (got flags {sorted(flags)})")
    else:
        model = _model_for(state, flags)
    return load_state_strictly(model, state, source=path)


def _model_for(state: Mapping[str, torch.Tensor], flags: Mapping[str, Any]) -> UNetModel:
    """The U-Net ``load_checkpoint`` loads ``state`` into: from the structural flags, else inferred."""
    diffusion_flags = set(model_and_diffusion_defaults()) - set(_MODEL_FLAGS)
    unknown = set(flags) - set(_MODEL_FLAGS) - _RUNTIME_FLAGS - diffusion_flags
    if unknown:
        raise ValueError(f"unknown flags {sorted(unknown)}; allowed: {sorted(_MODEL_FLAGS)}")
    structural = set(flags) - _RUNTIME_FLAGS - diffusion_flags
    if structural:
        defaults = model_and_diffusion_defaults()
        chosen = {k: flags.get(k, defaults[k]) for k in _MODEL_FLAGS}
        extra = {k: flags[k] for k in ("attention_backend",) if k in flags}
        return create_model(**chosen, **extra)
    config = infer_unet_config(state, num_heads=int(flags.get("num_heads", 4)))
    runtime = {k: v for k, v in flags.items() if k in _RUNTIME_FLAGS and k != "num_heads"}
    return UNetModel(**{**config, **runtime})
