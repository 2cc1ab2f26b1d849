"""A classifier run's flags → objects (``iddpm train_classifier``): its defaults, the "from the data"
placeholders, the full ``create_classifier`` keyword dict a run records, and the diffusion it noises with.

A classifier run's ``state.json`` config holds ``"kind": "classifier"``, ``"classifier_flags"`` (the full
keyword dict of :func:`impl.create_classifier`: :func:`classifier_flag_defaults`' names, every value
resolved) and ``"model_flags"`` (the diffusion flags of :func:`impl.factory.model_and_diffusion_defaults`
that the images were noised with, and ``image_size``).
"""

from __future__ import annotations

from typing import Any

from impl.factory.classifier import (
    CLASSIFIER_CHANNEL_MULT,
    CLASSIFIER_HEAD_CHANNELS,
    classifier_defaults,
    create_classifier,
)
from impl.factory.model_and_diffusion import NUM_CLASSES, parse_channel_mult
from impl.factory.run_flags import DIFFUSION_FLAG_TO_ARG, train_model_defaults
from impl.nn.classifier import EncoderUNetModel

__all__ = [
    "CLASSIFIER_TRAIN_OVERRIDES",
    "NOISING_FLAGS",
    "build_classifier",
    "classifier_flag_defaults",
    "classifier_noising_flags",
    "resolve_classifier_flags",
    "train_classifier_defaults",
]

CLASSIFIER_TRAIN_OVERRIDES: dict[str, Any] = {
    "image_size": 8,  # the digits are 8x8
    "classifier_width": 32,  # levels of 32 and 64 channels (GroupNorm(32); attention needs 64)
    "classifier_depth": 1,  # one residual block per level
    "classifier_attention_resolutions": "4",  # 8 px has no 32/16/8 levels below 8: attention at 4x4
    "in_channels": 0,  # 0: the data's channel count (1 for the digits)
    "num_classes": 0,  # 0: the data's class count (10 for the digits)
}
"""How ``iddpm train_classifier`` with no flags differs from guided-diffusion's flags: a small digits
classifier (the other flags keep guided-diffusion's values: attention pool, scale-shift norm, residual
up/downsampling; ``channel_mult`` "" takes the 8 px row (1, 2) of :data:`CLASSIFIER_CHANNEL_MULT`)."""


NOISING_FLAGS = ("diffusion_steps", "noise_schedule", "timestep_respacing", "rescale_timesteps")
"""The diffusion flags ``iddpm train_classifier`` takes; the run's other model_flags keep ``iddpm train``'s
defaults (they do not change how images are noised)."""


def classifier_flag_defaults() -> dict[str, Any]:
    """The full keyword dict ``create_classifier`` accepts that changes the layout, with its defaults:
    ``classifier_defaults()`` and the extensions ``in_channels``, ``num_classes``, ``channel_mult``,
    ``num_head_channels``."""
    return {
        **classifier_defaults(),
        "in_channels": 3,
        "num_classes": NUM_CLASSES,
        "channel_mult": "",
        "num_head_channels": CLASSIFIER_HEAD_CHANNELS,
    }


def train_classifier_defaults() -> dict[str, Any]:
    """:func:`classifier_flag_defaults` with :data:`CLASSIFIER_TRAIN_OVERRIDES` applied (the CLI's)."""
    return {**classifier_flag_defaults(), **CLASSIFIER_TRAIN_OVERRIDES}


def _mult_text(mult: tuple[float, ...]) -> str:
    return ",".join(format(m, "g") for m in mult)


def resolve_classifier_flags(flags: dict[str, Any], channels: int, num_classes: int) -> dict[str, Any]:
    """Fill the placeholders (``in_channels`` 0, ``num_classes`` 0) from the data and write
    ``channel_mult`` out (``""`` → the table's row for ``image_size``), so the dict rebuilds the same
    classifier whatever the defaults become.  Unknown names are a ValueError naming them."""
    allowed = classifier_flag_defaults()
    unknown = sorted(set(flags) - set(allowed))
    if unknown:
        raise ValueError(f"unknown classifier flags {unknown}; allowed: {sorted(allowed)}")
    out = {**allowed, **flags}
    if int(out["in_channels"]) == 0:
        out["in_channels"] = channels
    if int(out["num_classes"]) == 0:
        out["num_classes"] = num_classes
    size = int(out["image_size"])
    text = str(out["channel_mult"]).strip()
    if not text:
        if size not in CLASSIFIER_CHANNEL_MULT:
            raise ValueError(
                f"--channel_mult: image_size {size} has no default classifier channel_mult (defaults "
                f"exist for {sorted(CLASSIFIER_CHANNEL_MULT)}); pass e.g. --channel_mult 1,2,2"
            )
        out["channel_mult"] = _mult_text(CLASSIFIER_CHANNEL_MULT[size])
    else:
        out["channel_mult"] = _mult_text(parse_channel_mult(text, size))
    return out


def build_classifier(flags: dict[str, Any]) -> EncoderUNetModel:
    """``create_classifier(**flags)`` on exactly the names of :func:`classifier_flag_defaults`."""
    unknown = sorted(set(flags) - set(classifier_flag_defaults()))
    if unknown:
        raise ValueError(f"unknown classifier flags {unknown}")
    return create_classifier(**flags)


def classifier_noising_flags(overrides: dict[str, Any]) -> dict[str, Any]:
    """The run's ``model_flags``: ``image_size`` and every diffusion flag (``diffusion_steps``,
    ``noise_schedule``, ``timestep_respacing``, …), ``iddpm train``'s defaults where not overridden, so
    by default the classifier sees the noise levels of the digits model it will guide."""
    base = train_model_defaults()
    names = ("image_size", *DIFFUSION_FLAG_TO_ARG)
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"unknown diffusion flags {unknown}; allowed: {sorted(names)}")
    return {name: overrides.get(name, base[name]) for name in names}
