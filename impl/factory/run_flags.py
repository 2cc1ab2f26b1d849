"""A run's flag dict → objects: the training defaults (a small digits model), the "from the data"
placeholders, and the model and diffusion a run's recorded flags describe (``iddpm train|sample|nll``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from impl.diffusion.respacing import SpacedDiffusion
from impl.factory.diffusion import create_gaussian_diffusion
from impl.factory.model_and_diffusion import (
    NUM_CLASSES,
    create_model_and_diffusion,
    model_and_diffusion_defaults,
)

__all__ = [
    "DIFFUSION_FLAG_TO_ARG",
    "TRAIN_MODEL_OVERRIDES",
    "build_diffusion",
    "build_model_and_diffusion",
    "resolve_data_flags",
    "train_model_defaults",
]

# How ``iddpm train`` with no flags differs from ``model_and_diffusion_defaults()`` (the original's
# 64x64 ImageNet-sized defaults), so that it trains a recognisable digits model on a CPU in minutes.
TRAIN_MODEL_OVERRIDES: dict[str, Any] = {
    "image_size": 8,  # the digits are 8x8
    "in_channels": 0,  # 0: take the channel count from the data (1 for digits)
    "num_channels": 32,  # ~1.1 M parameters: a few minutes on 2 CPU cores
    "channel_mult": "1,2",  # two levels, 8x8 and 4x4 (the paper's tables start at 32 px)
    "attention_resolutions": "4",  # attention at 4x4 (plus the middle block)
    "learn_sigma": True,  # the paper's learned Σ (LEARNED_RANGE) with L_hybrid
    "noise_schedule": "cosine",  # the paper's schedule
    "num_classes": 0,  # 0: take the class count from the data when class_cond
}

DIFFUSION_FLAG_TO_ARG: dict[str, str] = {
    "diffusion_steps": "steps",
    "learn_sigma": "learn_sigma",
    "sigma_small": "sigma_small",
    "noise_schedule": "noise_schedule",
    "use_kl": "use_kl",
    "predict_xstart": "predict_xstart",
    "rescale_timesteps": "rescale_timesteps",
    "rescale_learned_sigmas": "rescale_learned_sigmas",
    "timestep_respacing": "timestep_respacing",
    "predict_v": "predict_v",
    "loss_weighting": "loss_weighting",
    "min_snr_gamma": "min_snr_gamma",
    "vlb_weight": "vlb_weight",
}


def train_model_defaults() -> dict[str, Any]:
    """``model_and_diffusion_defaults()`` with :data:`TRAIN_MODEL_OVERRIDES` applied."""
    flags = model_and_diffusion_defaults()
    flags.update(TRAIN_MODEL_OVERRIDES)
    return flags


def resolve_data_flags(flags: dict[str, Any], channels: int, num_classes: int | None) -> dict[str, Any]:
    """Fill the "from the data" placeholders (``in_channels`` 0, ``num_classes`` 0)."""
    out = dict(flags)
    if int(out.get("in_channels", 3)) == 0:
        out["in_channels"] = channels
    if int(out.get("num_classes", 0) or 0) == 0:
        if out.get("class_cond"):
            if not num_classes:
                raise ValueError("class_cond=True needs a data set with labels (num_classes unknown)")
            out["num_classes"] = num_classes
        else:
            out["num_classes"] = NUM_CLASSES
    return out


def check_value_types(values: dict[str, Any], defaults: dict[str, Any], where: str) -> None:
    """Raise ValueError when a value of ``values`` has another type than the default of its name (a bool
    for a bool, an int for an int, a number for a float, a string for a string; None where the default is
    None goes unchecked).  ``where`` names the source (a file) in the message."""
    for name, value in values.items():
        if name not in defaults or defaults[name] is None:
            continue
        default = defaults[name]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ValueError(
                f"{where}: {name} must be {type(default).__name__} like {default!r}, got {value!r}"
            )


def build_model_and_diffusion(flags: dict[str, Any]) -> tuple[nn.Module, SpacedDiffusion]:
    """``create_model_and_diffusion`` on exactly the model_and_diffusion flags in ``flags``."""
    known = model_and_diffusion_defaults()
    unknown = sorted(set(flags) - set(known))
    if unknown:
        raise ValueError(f"unknown model/diffusion flags {unknown}")
    return create_model_and_diffusion(**flags)


def build_diffusion(flags: dict[str, Any], timestep_respacing: str | None = None) -> SpacedDiffusion:
    """The diffusion of ``flags`` (optionally with another ``timestep_respacing``)."""
    args = {arg: flags[name] for name, arg in DIFFUSION_FLAG_TO_ARG.items() if name in flags}
    if timestep_respacing is not None:
        args["timestep_respacing"] = timestep_respacing
    return create_gaussian_diffusion(**args)
