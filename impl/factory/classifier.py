"""guided-diffusion's classifier flags: ``classifier_defaults``, ``create_classifier``, ``load_classifier``.

Channel multipliers per image size: guided-diffusion's for 64/128/256/512 px, and this library's choice
for sizes it does not define: 32 px → (1, 2, 2, 2) (the U-Net's CIFAR-10 levels), 8 px (the digits) →
(1, 2).  Attention uses 64 channels per head everywhere (the released classifiers'); ``dropout`` is 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from impl.factory.model_and_diffusion import NUM_CLASSES, parse_attention_resolutions, parse_channel_mult
from impl.nn.checkpoint_io import load_state_strictly, read_state_dict
from impl.nn.classifier import EncoderUNetModel

__all__ = [
    "CLASSIFIER_CHANNEL_MULT",
    "CLASSIFIER_HEAD_CHANNELS",
    "classifier_defaults",
    "create_classifier",
    "load_classifier",
]

CLASSIFIER_CHANNEL_MULT: dict[int, tuple[float, ...]] = {
    8: (1, 2),
    32: (1, 2, 2, 2),
    64: (1, 2, 3, 4),
    128: (1, 1, 2, 3, 4),
    256: (1, 1, 2, 2, 4, 4),
    512: (0.5, 1, 1, 2, 2, 4, 4),
}
"""Classifier channel multipliers per image size (8 and 32 px are this library's choice)."""

CLASSIFIER_HEAD_CHANNELS = 64
"""Channels per attention head in the classifier's attention blocks and attention pool."""


_CLASSIFIER_EXTENSIONS = (
    "in_channels",
    "num_classes",
    "channel_mult",
    "num_head_channels",
    "attention_backend",
    "use_new_attention_order",
)


def classifier_defaults() -> dict[str, Any]:
    """guided-diffusion's classifier flags with their defaults (a fresh dict on every call)."""
    return {
        "image_size": 64,
        "classifier_use_fp16": False,
        "classifier_width": 128,
        "classifier_depth": 2,
        "classifier_attention_resolutions": "32,16,8",
        "classifier_use_scale_shift_norm": True,
        "classifier_resblock_updown": True,
        "classifier_pool": "attention",
    }


def create_classifier(
    image_size: int = 64,
    classifier_use_fp16: bool = False,
    classifier_width: int = 128,
    classifier_depth: int = 2,
    classifier_attention_resolutions: str | Iterable[int] = "32,16,8",
    classifier_use_scale_shift_norm: bool = True,
    classifier_resblock_updown: bool = True,
    classifier_pool: str = "attention",
    *,
    in_channels: int = 3,
    num_classes: int = NUM_CLASSES,
    channel_mult: str | Sequence[float] = "",
    num_head_channels: int = CLASSIFIER_HEAD_CHANNELS,
    attention_backend: str = "sdpa",
    use_new_attention_order: bool = False,
) -> EncoderUNetModel:
    """The noisy-image classifier for guided-diffusion's flags: ``model(x, t) -> (B, num_classes)``.

    ``classifier_width`` is the base width, ``classifier_depth`` the residual blocks per level,
    ``classifier_attention_resolutions`` the resolutions (``"32,16,8"``) with attention blocks, and
    ``classifier_pool`` the head (``adaptive``, ``attention``, ``spatial``, ``spatial_v2``).  The extensions
    ``in_channels`` (1 for grey digits), ``num_classes`` (1000), ``channel_mult`` (``""``: the table
    :data:`CLASSIFIER_CHANNEL_MULT`) and ``num_head_channels`` (64) change the layout; ``attention_backend``
    does not, nor does ``use_new_attention_order`` (guided-diffusion's ``EncoderUNetModel`` flag, False
    as in their ``create_classifier``: the q/k/v split of the attention blocks; the attention pool always
    uses the new order).  ``classifier_use_fp16`` runs the trunk under float16 autocast on CUDA (float32
    parameters).
    """
    if image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
    for name, size in (("classifier_width", classifier_width), ("classifier_depth", classifier_depth)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{name} must be a positive integer, got {size!r}")
    for name, flag in (
        ("classifier_use_fp16", classifier_use_fp16),
        ("classifier_use_scale_shift_norm", classifier_use_scale_shift_norm),
        ("classifier_resblock_updown", classifier_resblock_updown),
    ):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    if isinstance(channel_mult, str) and not channel_mult.strip():
        if image_size not in CLASSIFIER_CHANNEL_MULT:
            raise ValueError(
                f"image_size {image_size} has no default classifier channel_mult (defaults exist for "
                f"{sorted(CLASSIFIER_CHANNEL_MULT)}); pass channel_mult explicitly, e.g. channel_mult='1,2,2'"
            )
        mult: tuple[float, ...] = CLASSIFIER_CHANNEL_MULT[image_size]
    else:
        mult = parse_channel_mult(channel_mult, image_size)
    attention_ds = parse_attention_resolutions(classifier_attention_resolutions, image_size, len(mult))
    return EncoderUNetModel(
        image_size=image_size,
        in_channels=in_channels,
        model_channels=classifier_width,
        out_channels=num_classes,
        num_res_blocks=classifier_depth,
        attention_resolutions=attention_ds,
        channel_mult=mult,
        use_fp16=classifier_use_fp16,
        num_head_channels=num_head_channels,
        use_scale_shift_norm=classifier_use_scale_shift_norm,
        resblock_updown=classifier_resblock_updown,
        pool=classifier_pool,
        attention_backend=attention_backend,
        use_new_attention_order=use_new_attention_order,
    )


def load_classifier(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    key: str | None = None,
    **flags: Any,
) -> EncoderUNetModel:
    """``create_classifier(**flags)`` (missing flags take :func:`classifier_defaults`) with the state dict
    at ``path`` loaded strictly (:class:`impl.nn.CheckpointMismatchError` on any key or shape mismatch);
    returned in eval mode."""
    allowed = {*classifier_defaults(), *_CLASSIFIER_EXTENSIONS}
    unknown = set(flags) - allowed
    if unknown:
        raise ValueError(f"unknown classifier flags {sorted(unknown)}; allowed: {sorted(allowed)}")
    state = read_state_dict(path, map_location=map_location, key=key)
    model = create_classifier(**{**classifier_defaults(), **flags})
    loaded = load_state_strictly(model, state, source=path)
    if not isinstance(loaded, EncoderUNetModel):
        raise TypeError("load_state_strictly returned a different module")
    return loaded
