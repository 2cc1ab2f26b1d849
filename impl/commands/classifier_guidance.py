"""Classifier guidance for ``iddpm sample``: read ``--classifier`` (a classifier run or a state-dict file),
check it against the diffusion model, and build the guidance `cond_fn` [S48].

A classifier run (``iddpm train_classifier``) is a run directory like ``iddpm train``'s: its
``checkpoints/step_N/state.json`` has ``config["kind"] == "classifier"``, ``config["classifier_flags"]`` (the
keyword dict of ``impl.create_classifier``) and ``config["model_flags"]`` (the diffusion the images were
noised with); the weights are ``model.safetensors`` (or ``ema_<rate>.safetensors`` with
``--classifier_use_ema``).  A plain state-dict file (``.pt``, ``.safetensors``; guided-diffusion's
released classifiers) carries no flags: they come from the ``--classifier_*`` flags, its image size and
channels from the model.
"""

from __future__ import annotations

import argparse
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from impl.diffusion.types import CondFn
from impl.factory import NUM_CLASSES, classifier_defaults, create_classifier, load_classifier
from impl.nn.checkpoint_io import CheckpointMismatchError
from impl.sampling.classifier_guidance import check_classifier_scale, guidance_cond_fn
from impl.train.checkpoint import STATE_FILENAME, find_checkpoint_dir, read_state_json
from impl.train.config import ema_rate_name
from impl.train.errors import CheckpointError, exception_line

__all__ = [
    "CLASSIFIER_RUN_KIND",
    "ClassifierGuidance",
    "LoadedClassifier",
    "check_guidance_flags",
    "classifier_guidance",
    "load_guidance_classifier",
]

CLASSIFIER_RUN_KIND = "classifier"
"""``state.json``'s ``config["kind"]`` of a classifier run."""

# create_classifier's keywords that the --classifier_<name> flags give for a plain state-dict file (the
# image size and channels always come from the diffusion model).
_FLAG_FOR_EXTENSION = {
    "num_classes": "classifier_num_classes",
    "channel_mult": "classifier_channel_mult",
    "num_head_channels": "classifier_num_head_channels",
}
# Flags a run's recorded classifier flags do not fix (a run-time choice, not the layout).
_RUN_OVERRIDABLE = frozenset({"classifier_use_fp16"})
# Diffusion flags the classifier and the model must share: they fix the noise level at each timestep.
_SHARED_DIFFUSION_FLAGS = ("diffusion_steps", "noise_schedule", "rescale_timesteps")


def cli_classifier_flag_names() -> tuple[str, ...]:
    """The ``--classifier_*`` flags that describe a plain state-dict file's classifier."""
    return (*(name for name in classifier_defaults() if name != "image_size"), *_FLAG_FOR_EXTENSION.values())


@dataclass(frozen=True)
class LoadedClassifier:
    """A classifier ready for guidance (eval mode, no parameter gradients) and the flags it was built with."""

    model: nn.Module
    flags: dict[str, Any]  # create_classifier's keyword dict
    weights: Path
    num_classes: int


@dataclass(frozen=True)
class ClassifierGuidance:
    """What ``generate_samples`` needs: the cond_fn (None at scale 0) and the classes to draw labels from."""

    cond_fn: CondFn | None
    num_classes: int
    classifier: LoadedClassifier


def check_guidance_flags(args: argparse.Namespace, explicit: set[str]) -> None:
    """The checks that need no file: a scale or classifier flag without ``--classifier``, a scale that is
    not a finite number >= 0, ``--compile`` with a classifier (refused: the compiled step is traced as one
    graph, and the guidance gradient runs autograd inside the step)."""
    given = sorted(name for name in explicit if name.startswith("classifier_"))
    if not args.classifier:
        if given:
            raise ValueError(f"--{given[0]} needs --classifier PATH (a classifier run or state-dict file)")
        return
    check_classifier_scale(args.classifier_scale, "--classifier_scale")
    if args.compile:
        raise ValueError(
            "--compile does not support --classifier: the compiled reverse step is one traced graph, and "
            "the guidance gradient runs autograd through the classifier inside it; drop --compile"
        )


def load_guidance_classifier(
    path_text: str,
    *,
    cli_flags: dict[str, Any],
    explicit: set[str],
    use_ema: bool,
    model_flags: dict[str, Any],
    class_label: int,
    device: torch.device,
) -> LoadedClassifier:
    """The classifier at ``path_text`` (``--classifier``), checked against the diffusion ``model_flags``.

    ``cli_flags`` holds the ``--classifier_*`` values (their names as the flags), ``explicit`` the flags the
    user gave.  Refused (ValueError naming the flag): a diffusion-model run, a classifier whose image size,
    channels, classes or noise (diffusion_steps, noise_schedule, rescale_timesteps) disagree with the
    model's, and ``class_label`` >= its classes.
    """
    path = Path(path_text)
    if not path.exists():
        raise FileNotFoundError(f"--classifier {path_text!r} does not exist")
    if path.is_dir() or (path.parent / STATE_FILENAME).is_file():
        flags, weights, noise_flags = _run_flags(path, path_text, cli_flags, explicit, use_ema)
    else:
        if use_ema:
            raise ValueError(
                f"--classifier_use_ema needs a classifier run; {path_text!r} is a state-dict file"
            )
        flags, weights, noise_flags = _file_flags(cli_flags, model_flags), path, {}
    _check_against_model(path_text, flags, noise_flags, model_flags, class_label)
    try:
        model = load_classifier(weights, **flags)
    except CheckpointMismatchError as exc:
        # diagnose_mismatch's flag hints name the U-Net's flags; the classifier's are --classifier_*
        found = exception_line(exc).split("; flags that probably differ", 1)[0]
        raise CheckpointMismatchError(
            f"--classifier: {found}; check the --classifier_* flags (a state-dict file records none)"
        ) from None
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, SafetensorError) as exc:
        raise CheckpointError(f"--classifier: cannot read {str(weights)!r}: {exception_line(exc)}") from None
    model.requires_grad_(False)
    return LoadedClassifier(model.to(device).eval(), flags, weights, int(flags["num_classes"]))


def _run_flags(
    path: Path, path_text: str, cli_flags: dict[str, Any], explicit: set[str], use_ema: bool
) -> tuple[dict[str, Any], Path, dict[str, Any]]:
    ckpt_dir = find_checkpoint_dir(path if path.is_dir() else path.parent)
    meta = read_state_json(ckpt_dir)
    config = meta["config"]
    if config.get("kind") != CLASSIFIER_RUN_KIND:
        raise ValueError(
            f"--classifier {path_text!r} is a diffusion-model run, not a classifier run (its state.json "
            f'config has no "kind": "{CLASSIFIER_RUN_KIND}"); give an `iddpm train_classifier` run or a '
            "classifier state-dict file"
        )
    flags, noise_flags = config.get("classifier_flags"), config.get("model_flags")
    if not isinstance(flags, dict) or not isinstance(noise_flags, dict):
        raise CheckpointError(f"{str(ckpt_dir / STATE_FILENAME)!r} lacks classifier_flags/model_flags")
    flags = dict(flags)
    for name in sorted(explicit & set(cli_flags)):
        key = next((k for k, v in _FLAG_FOR_EXTENSION.items() if v == name), name)
        if name in _RUN_OVERRIDABLE:
            flags[key] = cli_flags[name]
        elif key in flags and cli_flags[name] != flags[key]:
            raise ValueError(
                f"--{name}={cli_flags[name]!r} does not match the classifier run's {flags[key]!r} (a "
                "classifier run fixes its flags; drop the flag)"
            )
    if path.is_file():
        weights = path
    elif use_ema:
        rates = [float(r) for r in meta.get("ema_rates", [])]
        if not rates:
            raise ValueError(f"--classifier_use_ema: {str(ckpt_dir)!r} holds no EMA weights")
        weights = ckpt_dir / f"ema_{ema_rate_name(rates[0])}.safetensors"
    else:
        weights = ckpt_dir / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"--classifier: checkpoint file {str(weights)!r} is missing")
    return flags, weights, noise_flags


def _file_flags(cli_flags: dict[str, Any], model_flags: dict[str, Any]) -> dict[str, Any]:
    flags = {name: cli_flags[name] for name in classifier_defaults() if name != "image_size"}
    flags.update({key: cli_flags[name] for key, name in _FLAG_FOR_EXTENSION.items()})
    if flags["num_classes"] == 0:  # the model's classes, else guided-diffusion's ImageNet 1000
        model_classes = int(model_flags.get("num_classes") or 0) if model_flags.get("class_cond") else 0
        flags["num_classes"] = model_classes or NUM_CLASSES
    flags["image_size"] = int(model_flags["image_size"])
    flags["in_channels"] = int(model_flags["in_channels"])
    try:
        create_classifier(**flags)  # bad flags: refused before any file is read
    except ValueError as exc:
        raise ValueError(f"the --classifier_* flags of a state-dict file: {exception_line(exc)}") from None
    return flags


def _check_against_model(
    path_text: str,
    flags: dict[str, Any],
    noise_flags: dict[str, Any],
    model_flags: dict[str, Any],
    class_label: int,
) -> None:
    where = f"--classifier {path_text!r}"
    for name in ("image_size", "in_channels"):
        ours, theirs = flags.get(name, classifier_defaults().get(name, 3)), model_flags[name]
        if int(ours) != int(theirs):
            raise ValueError(f"{where}: the classifier's {name} {ours} differs from the model's {theirs}")
    for name in _SHARED_DIFFUSION_FLAGS:
        if name in noise_flags and noise_flags[name] != model_flags.get(name):
            raise ValueError(
                f"{where}: the classifier was trained on noise with {name}={noise_flags[name]!r}, the model "
                f"samples with {model_flags.get(name)!r}"
            )
    classes = int(flags.get("num_classes", NUM_CLASSES))
    if model_flags.get("class_cond") and classes != int(model_flags["num_classes"]):
        raise ValueError(
            f"{where}: the classifier has {classes} classes, the class-conditional model "
            f"{model_flags['num_classes']}"
        )
    if class_label >= classes:
        raise ValueError(f"--class_label {class_label} is not a class of the classifier (0 … {classes - 1})")


def classifier_guidance(
    args: argparse.Namespace, explicit: set[str], model_flags: dict[str, Any], device: torch.device
) -> ClassifierGuidance | None:
    """``--classifier``'s guidance for ``iddpm sample`` (None without it): the classifier under the
    run's ``--precision`` (autocast, float32 logits) and its cond_fn at ``--classifier_scale``."""
    if not args.classifier:
        return None
    from impl.commands.generation import inference_model

    names = cli_classifier_flag_names()
    loaded = load_guidance_classifier(
        args.classifier,
        cli_flags={name: getattr(args, name) for name in names},
        explicit=explicit & set(names),
        use_ema=args.classifier_use_ema,
        model_flags=model_flags,
        class_label=args.class_label,
        device=device,
    )
    net = inference_model(loaded.model, precision=args.precision, device=device)
    return ClassifierGuidance(guidance_cond_fn(net, args.classifier_scale), loaded.num_classes, loaded)
