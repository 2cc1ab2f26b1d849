"""``iddpm train``: build the configuration from the flags and train."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from impl.commands import PROG, common


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
        overwrite=bool(args.overwrite),
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
            done = result.step if result.steps_this_run is None else result.steps_this_run
            total = "" if done == result.step else f" (step {result.step} in total)"
            print(
                f"{PROG}: trained {done} steps{total}; run directory {run_dir} "
                f"(checkpoints/, samples/, log.jsonl)",
                file=sys.stderr,
            )
    return 0
