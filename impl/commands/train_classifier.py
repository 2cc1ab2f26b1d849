"""``iddpm train_classifier``: build the classifier run's configuration from the flags and train."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from typing import Any

from impl.commands import PROG, common


def _number(value: Any) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3f}"
    )


def print_evaluation(record: dict[str, Any]) -> None:
    """One console line per held-out evaluation (the full record is in log.jsonl)."""
    quarters = " ".join(_number(record.get(f"val_acc1_q{b}")) for b in range(4))
    print(
        f"{PROG} train_classifier: step {record['step']} held-out ({int(record['val_num_samples'])} noised "
        f"images): loss {_number(record['val_loss'])}, top-1 {_number(record['val_acc1'])}, top-5 "
        f"{_number(record['val_acc5'])}; top-1 per quarter of t (low t first): {quarters}",
        file=sys.stderr,
    )


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.factory.classifier_run_flags import (
        NOISING_FLAGS,
        classifier_flag_defaults,
        classifier_noising_flags,
    )
    from impl.train.classifier_config import ClassifierTrainConfig, default_held_out
    from impl.train.classifier_run import train_classifier_command

    for flag in ("classifier_width", "classifier_depth"):  # the network would name its own parameters
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag} must be a positive integer, got {getattr(args, flag)}")
    classifier_names = set(classifier_flag_defaults())
    noising_names = {*NOISING_FLAGS, "image_size"}
    fields = {f.name for f in dataclasses.fields(ClassifierTrainConfig)}
    fields -= {"model_flags", "classifier_flags", "kind"}
    values = {k: getattr(args, k) for k in fields if hasattr(args, k)}
    if args.lr_anneal_steps is None:
        values["lr_anneal_steps"] = args.max_steps
    if args.val_data is None:
        values["val_data"] = default_held_out(args.data)
    config = ClassifierTrainConfig(
        **values,
        classifier_flags={k: getattr(args, k) for k in classifier_names},
        model_flags=classifier_noising_flags({k: getattr(args, k) for k in noising_names}),
    )
    result = train_classifier_command(
        config,
        resume=args.resume,
        explicit=explicit & fields,
        explicit_model=explicit & noising_names,
        explicit_classifier=explicit & classifier_names,
        overwrite=bool(args.overwrite),
        report=print_evaluation,
    )
    common.report_training_end(
        result,
        "train_classifier",
        "trained the classifier",
        "checkpoints/, log.jsonl",
        then="; guide sampling with it: --classifier {run_dir}",
    )
    return 0
