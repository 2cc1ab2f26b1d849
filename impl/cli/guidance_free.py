"""The ``iddpm sample`` flag of classifier-free guidance (docs/guidance.md); ``--class_dropout_prob``, its
training side, is a model flag of ``model_and_diffusion_defaults()``."""

from __future__ import annotations

import argparse


def _add_guidance_free_flags(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("classifier-free guidance (a run trained with --class_dropout_prob > 0)")
    g.add_argument(
        "--guidance_scale",
        type=float,
        default=None,
        metavar="W",
        help="eps(x, null) + W * (eps(x, y) - eps(x, null)), both in one batched call; 1: conditional, "
        "0: unconditional (Ho & Salimans' w' is W - 1); default: off",
    )
