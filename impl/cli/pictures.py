"""The flags of the pictures ``iddpm`` writes: ``sample --save_trajectory k`` and ``--grid_scale N``
(``sample`` and ``train``); see ``impl.commands.trajectory`` and ``impl.data.writers``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["_add_grid_scale_flag", "_add_trajectory_flags"]


def _integer_at_least(lowest: int, meaning: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {meaning}, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be an integer {meaning}, got {value}")
        return value

    return parse


def _add_grid_scale_flag(p: argparse._ActionsContainer) -> None:
    p.add_argument(
        "--grid_scale",
        type=_integer_at_least(0, ">= 0 (0: auto, 1: no enlargement, N: N x N pixels per pixel)"),
        default=0,
        metavar="N",
        help="enlarge PNG grids/strips N times, nearest neighbour (0: auto, tiles >= 64 px, at most "
        "4096 px; 1: off); the .npz is never enlarged",
    )


def _add_trajectory_flags(s: argparse.ArgumentParser) -> None:
    """``iddpm sample``'s picture flags: ``--save_trajectory k`` and ``--grid_scale N``."""
    s.add_argument(
        "--save_trajectory",
        type=_integer_at_least(1, ">= 1 (record every k-th step)"),
        default=None,
        metavar="K",
        help="also write <stem>_trajectory/sample_<i>.png: every K-th step's x_t (top) and predicted x_0 "
        "(bottom), first and last step included",
    )
    _add_grid_scale_flag(s)
