"""Command-line flags from a defaults dict, as the original scripts build them (script_util's helpers)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["add_dict_to_argparser", "args_to_dict", "str2bool"]


def str2bool(value: str | bool) -> bool:
    """Parse a command-line boolean: yes/true/t/y/1 or no/false/f/n/0 (any case)."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("yes", "true", "t", "y", "1"):
        return True
    if lowered in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"boolean value expected (true/false, yes/no, 1/0), got {value!r}")


def add_dict_to_argparser(parser: argparse.ArgumentParser, default_dict: Mapping[str, Any]) -> None:
    """Add ``--key`` for every entry, typed by its default (``str2bool`` for bools, ``str`` for ``None``)."""
    for key, value in default_dict.items():
        arg_type: Any
        if value is None:
            arg_type = str
        elif isinstance(value, bool):
            arg_type = str2bool
        else:
            arg_type = type(value)
        parser.add_argument(f"--{key}", default=value, type=arg_type)


def args_to_dict(args: argparse.Namespace, keys: Iterable[str]) -> dict[str, Any]:
    """``{key: args.key}`` for the given keys."""
    return {key: getattr(args, key) for key in keys}
