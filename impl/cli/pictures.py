"""The flags of the pictures ``iddpm`` writes: ``sample --save_trajectory k`` and ``--grid_scale N``
(``sample`` and ``train``); see ``impl.commands.trajectory`` and ``impl.data.writers``.

Both are read as integers when they are integers and kept as text otherwise, so that the command refuses a
bad value with its one-line error naming the flag (argparse would print its whole usage first)."""

from __future__ import annotations

import argparse

__all__ = ["_add_grid_scale_flag", "_add_trajectory_flags"]


def _int_or_text(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _add_grid_scale_flag(p: argparse._ActionsContainer) -> None:
    p.add_argument(
        "--grid_scale",
        type=_int_or_text,
        default=0,
        metavar="N",
        help="enlarge PNG grids/strips N times, nearest neighbour (0: auto, tiles >= 64 px, at most "
        "4096 px; 1: off); the .npz is never enlarged",
    )


def _add_trajectory_flags(s: argparse.ArgumentParser) -> None:
    """``iddpm sample``'s picture flags: ``--save_trajectory k`` and ``--grid_scale N``."""
    s.add_argument(
        "--save_trajectory",
        type=_int_or_text,
        default=None,
        metavar="K",
        help="also write <stem>_trajectory/sample_<i>.png: every K-th step's x_t (top) and predicted x_0 "
        "(bottom), first and last step included",
    )
    _add_grid_scale_flag(s)
