"""``iddpm train``: build the configuration from the flags and train."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from impl.commands import common


def _sample_scorer(config: Any) -> Any:
    """Rank 0's scorer for ``--eval_interval`` (the Inception metrics of impl.evaluate)."""
    from impl.evaluate.during_training import TrainingSampleScorer

    return TrainingSampleScorer(
        config.eval_reference,
        config.eval_metrics,
        config.eval_inception_weights,
        device=common.device(config.device),
        image_size=int(config.model_flags.get("image_size", 0)) or None,
    )


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.factory import check_class_dropout_prob, model_and_diffusion_defaults
    from impl.train.config import TrainConfig
    from impl.train.run import train_command

    if args.recipe:
        explicit = apply_recipe(args, explicit)
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model_flags"}
    values = {k: getattr(args, k) for k in fields}
    if args.lr_anneal_steps is None:
        values["lr_anneal_steps"] = args.max_steps
    if args.use_fp16:
        if "precision" in explicit and args.precision != "fp16":
            raise ValueError(f"--use_fp16 True contradicts --precision {args.precision}")
        values["precision"] = "fp16"
        explicit = explicit | {"precision"}
    config = TrainConfig(**values, model_flags=common.model_flag_values(args))
    check_class_dropout_prob(args.class_dropout_prob, args.class_cond)  # before any file is written
    if args.dry_run:
        if args.resume is not None:
            raise ValueError(
                "--dry_run shows a new run's resolved flags; it cannot be combined with --resume"
            )
        config.validate()
        from impl.factory import build_diffusion

        build_diffusion(
            dict(config.model_flags)
        )  # the diffusion flags' own checks (predict_v, vlb_weight, …)
        print(json.dumps(config.to_dict(), indent=2, sort_keys=True))
        return 0
    model_names = set(model_and_diffusion_defaults())
    result = train_command(
        config,
        resume=args.resume,
        explicit=(explicit & fields),
        explicit_model=(explicit & model_names),
        overwrite=bool(args.overwrite),
        scorer_factory=_sample_scorer,
    )
    common.report_training_end(result, "train", "trained", "checkpoints/, samples/, log.jsonl")
    return 0


def apply_recipe(args: argparse.Namespace, explicit: set[str]) -> set[str]:
    """Set every flag of ``--recipe`` the user did not give explicitly; returns the flags now requested.

    The recipe's flags count as explicitly requested: resuming a run with ``--recipe`` checks that the run
    was trained with the same values.
    """
    from impl.train.recipes import get_recipe

    recipe = get_recipe(args.recipe)
    for name, value in recipe.flags.items():
        if name not in explicit:
            setattr(args, name, value)
    return explicit | set(recipe.flags) | {"recipe"}
