"""Loading a trained model for ``iddpm sample`` / ``nll`` / ``encode`` / ``interpolate``: a run directory, a
checkpoint folder or file, or a state-dict file of the original code."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from impl.factory import build_diffusion, build_model_and_diffusion, model_and_diffusion_defaults
from impl.train.checkpoint import (
    STATE_FILENAME,
    check_run_kind,
    earlier_checkpoint_hint,
    find_checkpoint_dir,
    read_state_json,
)
from impl.train.config import ema_rate_name, parse_ema_rates
from impl.train.errors import CheckpointError, exception_line

# Flags a sampling/evaluation command may set differently from the training run.
INFERENCE_OVERRIDABLE = frozenset({"timestep_respacing", "use_checkpoint", "dropout"})


@dataclass
class LoadedModel:
    model: nn.Module
    diffusion: Any
    flags: dict[str, Any]
    weights: Path
    run_dir: Path | None


def load_for_inference(
    checkpoint: str,
    *,
    cli_flags: dict[str, Any],
    explicit_model: set[str],
    use_ema: bool,
    ema_rate: str,
    device: torch.device,
) -> LoadedModel:
    """The model and diffusion of a checkpoint.

    ``checkpoint`` is a run directory (its latest checkpoint), a ``checkpoints/step_N`` folder, one
    ``.safetensors`` file inside such a folder, or a state-dict file of the original code (``.pt``) or of
    any source, in which case the model flags come from the command line (``cli_flags``).
    ``timestep_respacing`` always comes from the command line.
    """
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint!r} does not exist")
    respacing = str(cli_flags.get("timestep_respacing", ""))
    if path.is_dir() or (path.parent / STATE_FILENAME).is_file():
        ckpt_dir = find_checkpoint_dir(path if path.is_dir() else path.parent)
        meta = read_state_json(ckpt_dir)
        check_run_kind(meta["config"], None, ckpt_dir)  # a classifier run is no model to sample
        try:
            flags = dict(meta["config"]["model_flags"])
            rates = [float(r) for r in meta["ema_rates"]]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{str(ckpt_dir / STATE_FILENAME)!r} lacks model_flags/ema_rates") from None
        # A flag the run does not record (it predates the flag) was built with the flag's default.
        recorded = {**model_and_diffusion_defaults(), **flags}
        for name in sorted(explicit_model - INFERENCE_OVERRIDABLE):
            if name in recorded and cli_flags[name] != recorded[name]:
                raise CheckpointError(
                    f"--{name}={cli_flags[name]!r} does not match the checkpoint's {recorded[name]!r} "
                    "(model and diffusion flags come from the run; drop the flag)"
                )
        flags.update({k: cli_flags[k] for k in explicit_model & INFERENCE_OVERRIDABLE})
        flags["timestep_respacing"] = respacing
        weights = path if path.is_file() else _choose_weights(ckpt_dir, rates, use_ema, ema_rate)
        model, diffusion = build_model_and_diffusion(flags)
        _load_state(model, weights)
        return LoadedModel(model.to(device).eval(), diffusion, flags, weights, ckpt_dir.parent.parent)

    from impl.factory import load_checkpoint, model_flag_names

    flags = dict(cli_flags)
    model_flags = {k: flags[k] for k in model_flag_names() if k in flags}
    if not flags.get("class_cond"):
        model_flags.pop("num_classes", None)
    try:
        model = load_checkpoint(path, **model_flags)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, SafetensorError) as exc:
        raise CheckpointError(f"cannot read checkpoint {checkpoint!r}: {exception_line(exc)}") from None
    return LoadedModel(model.to(device).eval(), build_diffusion(flags), flags, path, None)


def _choose_weights(ckpt_dir: Path, rates: list[float], use_ema: bool, ema_rate: str) -> Path:
    if not use_ema:
        return ckpt_dir / "model.safetensors"
    if not rates:
        raise CheckpointError(f"{str(ckpt_dir)!r} holds no EMA weights; pass --use_ema False")
    rate = parse_ema_rates(ema_rate)[0] if ema_rate else rates[0]
    if rate not in rates:
        raise CheckpointError(f"--ema_rate {rate} is not in the checkpoint; it holds {rates}")
    return ckpt_dir / f"ema_{ema_rate_name(rate)}.safetensors"


def _load_state(model: nn.Module, weights: Path) -> None:
    try:
        state = load_file(str(weights), device="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {str(weights)!r} is missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        hint = earlier_checkpoint_hint(weights.parent)
        raise CheckpointError(
            f"checkpoint file {str(weights)!r} is corrupt: {exception_line(exc)}{hint}"
        ) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{str(weights)!r} does not match the model: {exception_line(exc)}") from None
