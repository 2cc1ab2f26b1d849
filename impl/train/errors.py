"""Errors the trainer and the CLI report to the user as one line (exit code 2)."""

from __future__ import annotations

import re

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class TrainError(ValueError):
    """A user-facing problem: bad configuration, missing run directory, corrupt or mismatched checkpoint."""


class CheckpointError(TrainError):
    """A checkpoint that cannot be read, is incomplete, or does not match the model it is loaded into."""


def one_line(message: str) -> str:
    """``message`` as one line: ANSI escape codes removed, its lines joined (after a line ending in ":"
    by a space, else by "; "), so a multi-line diagnosis reaches the user whole."""
    lines = [line.strip() for line in _ANSI_ESCAPE.sub("", message).splitlines() if line.strip()]
    out = ""
    for line in lines:
        out = line if not out else out + (" " if out.endswith(":") else "; ") + line
    return out


def exception_line(exc: BaseException) -> str:
    """:func:`one_line` of ``exc``'s message, or its class name when it has none."""
    return one_line(str(exc)) or type(exc).__name__
