"""``iddpm train_classifier``: open the labelled data and the held-out split, build the classifier and its
noising diffusion, and start or resume a classifier run directory (through :func:`run_training`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from impl.factory import build_diffusion
from impl.factory.classifier_run_flags import build_classifier, resolve_classifier_flags
from impl.runtime.seeding import STREAM_INIT, derive_seed
from impl.train.batches import BatchSource, InMemoryData
from impl.train.checkpoint import TrainingCheckpoint
from impl.train.classifier_config import CLASSIFIER_RESUME_OVERRIDABLE, ClassifierTrainConfig
from impl.train.classifier_trainer import ClassifierTrainer
from impl.train.config import TrainConfig
from impl.train.distributed import DistContext, init_from_env, shutdown
from impl.train.errors import TrainError
from impl.train.run import open_batch_source, run_training
from impl.train.trainer import Trainer, TrainResult

__all__ = ["train_classifier_command"]

Report = Callable[[dict[str, Any]], None]


def train_classifier_command(
    config: ClassifierTrainConfig,
    *,
    resume: str | None = None,
    explicit: set[str] | None = None,
    explicit_model: set[str] | None = None,
    explicit_classifier: set[str] | None = None,
    overwrite: bool = False,
    report: Report | None = None,
) -> TrainResult:
    """Train until max_steps or SIGINT/SIGTERM (after saving); see ``docs/guidance.md``.

    ``explicit`` / ``explicit_model`` / ``explicit_classifier``: the run-control, diffusion and
    classifier flags given on the command line (a resumed run refuses a changed one it cannot change).
    """
    ctx = init_from_env(config.device)
    wanted = set(explicit_classifier or set())

    def build(
        ctx: DistContext, merged: TrainConfig, ckpt: TrainingCheckpoint | None
    ) -> tuple[TrainConfig, Trainer]:
        assert isinstance(merged, ClassifierTrainConfig)
        return _build(ctx, merged, config, ckpt, wanted, report)

    try:
        return run_training(
            ctx,
            config,
            build,
            resume=resume,
            explicit=explicit or set(),
            explicit_model=explicit_model or set(),
            overwrite=overwrite,
            overridable=CLASSIFIER_RESUME_OVERRIDABLE,
        )
    finally:
        shutdown()


def _open_labelled(
    config: ClassifierTrainConfig, saved: dict[str, Any] | None
) -> tuple[BatchSource, int, int]:
    """The training batches of ``--data``, their class count and channel count (labels required)."""
    flags = config.classifier_flags
    wanted = {"image_size": flags["image_size"], "class_cond": True, "in_channels": flags["in_channels"]}
    no_labels = _no_labels("--data", config.data)
    try:
        data, num_classes, channels = open_batch_source(config, wanted, saved)
    except ValueError as exc:
        # the readers' "class_cond=True needs labels" speaks of the diffusion flag: say it for a classifier
        raise ValueError(
            no_labels if "needs labels" in str(exc) else f"--data {config.data!r}: {exc}"
        ) from None
    if not data.has_labels or not num_classes:
        raise ValueError(no_labels)
    return data, int(num_classes), int(channels)


def _no_labels(flag: str, spec: str) -> str:
    return (
        f"{flag} {spec!r} has no labels; a classifier trains and is scored on labelled images (the digits, "
        "an .npz with arr_1, a folder prepared with labels)"
    )


def _open_held_out(config: ClassifierTrainConfig, flags: dict[str, Any]) -> InMemoryData | None:
    """``--val_data`` in memory, checked against the classifier (None when there is none)."""
    if not config.val_data:
        return None
    from impl.data.training_source import open_training_data

    channels = int(flags["in_channels"])
    try:
        source = open_training_data(
            config.val_data,
            image_size=int(flags["image_size"]),
            class_cond=True,
            channels=channels if channels in (1, 3) else None,
            loader="memory",
        )
    except ValueError as exc:
        # as for --data: the readers' "class_cond=True needs labels" speaks of the diffusion flag
        no_labels = "needs labels" in str(exc)
        raise ValueError(
            _no_labels("--val_data", config.val_data)
            if no_labels
            else f"--val_data {config.val_data!r}: {exc}"
        ) from None
    if source.memory is None:
        raise ValueError(
            f"--val_data {config.val_data!r} must be held in memory (digits, .npz, image folder)"
        )
    held = InMemoryData.from_image_dataset(source.memory)
    if held.labels is None:
        raise ValueError(_no_labels("--val_data", config.val_data))
    if held.sample_shape[0] != channels:
        raise ValueError(
            f"--val_data {config.val_data!r} has {held.sample_shape[0]} channels, the classifier {channels}"
        )
    if len(held) and int(held.labels.max()) >= int(flags["num_classes"]):
        raise ValueError(
            f"--val_data {config.val_data!r} has label {int(held.labels.max())}, beyond the classifier's "
            f"{flags['num_classes']} classes"
        )
    return held


def _check_resumed_flags(
    requested: dict[str, Any], saved: dict[str, Any], explicit: set[str], channels: int, classes: int
) -> None:
    """An explicitly given classifier flag must equal the resumed run's (both resolved)."""
    mine = resolve_classifier_flags(requested, channels, classes)
    for name in sorted(explicit):
        if mine.get(name) != saved.get(name):
            raise TrainError(
                f"--{name}={mine.get(name)!r} differs from the resumed run's {saved.get(name)!r}"
            )


def _build(
    ctx: DistContext,
    config: ClassifierTrainConfig,
    requested: ClassifierTrainConfig,
    ckpt: TrainingCheckpoint | None,
    explicit_classifier: set[str],
    report: Report | None,
) -> tuple[TrainConfig, Trainer]:
    data, num_classes, channels = _open_labelled(config, None if ckpt is None else ckpt.config)
    flags = resolve_classifier_flags(config.classifier_flags, channels, num_classes)
    if ckpt is not None:
        _check_resumed_flags(
            requested.classifier_flags, flags, explicit_classifier, flags["in_channels"], flags["num_classes"]
        )
    if flags["in_channels"] != channels:
        raise ValueError(f"--in_channels {flags['in_channels']} differs from the data's {channels} channels")
    if flags["num_classes"] < num_classes:
        raise ValueError(f"--num_classes {flags['num_classes']} is below the data's {num_classes} classes")
    config = replace(config, classifier_flags=flags)
    held_out = _open_held_out(config, flags)
    torch.manual_seed(derive_seed(config.seed, STREAM_INIT))
    model = build_classifier(flags)
    diffusion = build_diffusion(dict(config.model_flags))
    trainer = ClassifierTrainer(
        model=model, diffusion=diffusion, data=data, config=config, held_out=held_out, ctx=ctx, report=report
    )
    return config, trainer
