"""``iddpm train | sample | nll | evaluate | stats``: parse flags, call the library, one-line errors.

Flag names are those of the original scripts (``--image_size``, ``--num_channels``, ``--use_ddim``, …);
``--image-size`` style spellings are accepted too.  Bad flags, missing paths and corrupt or mismatched
checkpoints print ``iddpm: error: …`` on stderr and exit with status 2, without a traceback and without
writing anything.

The parsers live in ``impl.cli.parsers``; each command's work is ``impl.commands.<name>.run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from impl.cli.options import EXIT_USAGE, PROG, normalize_flag_spelling
from impl.cli.parsers import build_parser, explicit_flags

__all__ = [
    "COMMANDS",
    "EXIT_USAGE",
    "PROG",
    "build_parser",
    "explicit_flags",
    "main",
    "normalize_flag_spelling",
]

#: ``iddpm <name>`` runs ``impl.commands.<module>.run(args, explicit_flags)``.
COMMANDS: dict[str, str] = {
    "train": "impl.commands.train",
    "sample": "impl.commands.sample",
    "nll": "impl.commands.nll",
    "evaluate": "impl.commands.evaluate",
    "stats": "impl.commands.stats",
}


def command_runner(name: str) -> Callable[[argparse.Namespace, set[str]], int]:
    """The ``run`` function of command ``name`` (imported on demand: ``iddpm --help`` stays fast)."""
    module = importlib.import_module(COMMANDS[name])
    run: Callable[[argparse.Namespace, set[str]], int] = module.run
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``iddpm`` script; returns the exit status."""
    tokens = normalize_flag_spelling(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(tokens)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    from impl.nn import CheckpointMismatchError
    from impl.train.errors import TrainError

    try:
        return command_runner(args.command)(args, explicit_flags(tokens))
    except (TrainError, CheckpointMismatchError, ValueError, FileNotFoundError, NotADirectoryError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
