"""``iddpm train``: build the configuration from the flags and train."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from impl.commands import PROG, common


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
    from impl.factory import model_and_diffusion_defaults
    from impl.train.config import TrainConfig
    from impl.train.run import train_command

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
    model_names = set(model_and_diffusion_defaults())
    result = train_command(
        config,
        resume=args.resume,
        explicit=(explicit & fields),
        explicit_model=(explicit & model_names),
        scorer_factory=_sample_scorer,
    )
    if result.checkpoint is not None:
        run_dir = result.checkpoint.parent.parent
        if result.stopped_early:
            print(
                f"{PROG}: stopped at step {result.step}; checkpoint saved to {result.checkpoint}; "
                f"continue with: {PROG} train --resume {run_dir}",
                file=sys.stderr,
            )
        else:
            print(
                f"{PROG}: trained {result.step} steps; run directory {run_dir} "
                f"(checkpoints/, samples/, log.jsonl)",
                file=sys.stderr,
            )
    return 0
