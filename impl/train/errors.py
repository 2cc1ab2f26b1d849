"""Errors the trainer and the CLI report to the user as one line (exit code 2)."""

from __future__ import annotations


class TrainError(ValueError):
    """A user-facing problem: bad configuration, missing run directory, corrupt or mismatched checkpoint."""


class CheckpointError(TrainError):
    """A checkpoint that cannot be read, is incomplete, or does not match the model it is loaded into."""
