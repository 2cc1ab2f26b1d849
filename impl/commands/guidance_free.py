"""``iddpm sample --guidance_scale``: the checkpoints classifier-free guidance accepts (docs/guidance.md)."""

from __future__ import annotations

from typing import Any


def guidance_scale_for(guidance_scale: float | None, flags: dict[str, Any], checkpoint: str) -> float | None:
    """``--guidance_scale`` checked against the model's flags: a finite number, on a class-conditional
    model trained with a null label (``class_dropout_prob > 0``); None when the flag is not given."""
    from impl.sampling.guidance_free import check_guidance_scale

    if guidance_scale is None:
        return None
    scale = check_guidance_scale(guidance_scale, "--guidance_scale")
    if not flags.get("class_cond"):
        raise ValueError(
            f"--guidance_scale needs a class-conditional model trained with --class_dropout_prob > 0; "
            f"{checkpoint!r} is unconditional (class_cond False): drop --guidance_scale"
        )
    if not float(flags.get("class_dropout_prob", 0.0) or 0.0) > 0.0:
        raise ValueError(
            f"--guidance_scale needs a model trained with a null label (--class_dropout_prob > 0); "
            f"{checkpoint!r} was trained with class_dropout_prob 0 (no null-label row): drop "
            "--guidance_scale, or train with e.g. --class_dropout_prob 0.1"
        )
    return scale
