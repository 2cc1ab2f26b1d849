"""``iddpm train | sample | nll | evaluate | stats | prepare | recipes``: parse flags, call the library,
report errors in one line.

Flag names are those of the original scripts (``--image_size``, ``--num_channels``, ``--use_ddim``, …);
``--image-size`` style spellings are accepted too.  Bad flags, missing paths and corrupt or mismatched
checkpoints print ``iddpm: error: …`` on stderr (the whole message on one line, no ANSI codes) and exit
with status 2, without a traceback and without writing anything.  A run that diverges, and an operating
system error during the work (a full disk), print one line the same way and exit with status 1.

The parsers live in ``impl.cli.parsers``; each command's work is ``impl.commands.<name>.run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from impl.cli.options import EXIT_FAILURE, EXIT_USAGE, PROG, normalize_flag_spelling
from impl.cli.parsers import build_parser, explicit_flags

__all__ = [
    "COMMANDS",
    "EXIT_FAILURE",
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
    "train_classifier": "impl.commands.train_classifier",
    "sample": "impl.commands.sample",
    "encode": "impl.commands.encode",
    "interpolate": "impl.commands.interpolate",
    "nll": "impl.commands.nll",
    "evaluate": "impl.commands.evaluate",
    "prepare": "impl.commands.prepare",
    "recipes": "impl.commands.recipes",
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
    from impl.train.divergence import DivergenceError
    from impl.train.errors import exception_line

    try:
        return command_runner(args.command)(args, explicit_flags(tokens))
    except DivergenceError as exc:
        return _report(args.command, exception_line(exc), EXIT_FAILURE)
    except ValueError as exc:  # TrainError, CheckpointError, CheckpointMismatchError: refusals
        return _report(args.command, exception_line(exc), EXIT_USAGE)
    except OSError as exc:
        return _report(args.command, *_os_error_line(exc))
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


def _report(command: str, message: str, code: int) -> int:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return code


def _os_error_line(exc: OSError) -> tuple[str, int]:
    """Our own path errors (no errno: a missing input) are refusals (2); the operating system's (a full
    disk, a read-only file system, a permission) stop the work (1): strerror and the file, one line."""
    from impl.train.errors import exception_line

    if exc.errno is None:
        return exception_line(exc), EXIT_USAGE
    where = f": {exc.filename}" if exc.filename else ""
    also = f" and {exc.filename2}" if exc.filename2 else ""
    return f"{exc.strerror or type(exc).__name__}{where}{also}", EXIT_FAILURE
