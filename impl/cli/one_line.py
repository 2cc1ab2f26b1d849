"""The parser class of every ``iddpm`` command: a flag argparse cannot read is one line, exit 2.

argparse answers a bad value (``--eta abc``, ``--resample_jumps 2.5``, a choice it does not know, a missing
required flag) by printing the command's whole usage (fifty lines for ``iddpm sample``) and then the error.
The one-line error policy (``impl.cli``) wants the error alone: :class:`OneLineParser` prints
``iddpm <command>: error: <message>; see 'iddpm <command> --help'`` on one line and exits with status 2.
A value of the wrong type reads ``--flag must be an integer|a number, got 'text'``.  Sub-parsers inherit the
class (``add_subparsers`` builds its children with the parent's class), so one hook covers every flag of
every command; ``--help`` is unchanged.
"""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

from impl.cli.options import EXIT_USAGE

__all__ = ["OneLineParser", "one_line_message"]

# argparse's wording for a value its ``type`` rejected (``int("2.5")``, ``float("abc")``)
_INVALID_VALUE = re.compile(r"^argument (?P<flags>\S+): invalid (?P<type>\w+) value: (?P<value>.*)$", re.S)
_WHAT_TYPES_TAKE = {"int": "an integer", "float": "a number"}


def one_line_message(message: str) -> str:
    """argparse's error ``message`` as our one line: a rejected int/float value names the flag and what it
    takes (``--eta must be a number, got 'abc'``); any other message loses argparse's "argument " prefix."""
    match = _INVALID_VALUE.match(message)
    if match and match["type"] in _WHAT_TYPES_TAKE:
        message = f"{match['flags']} must be {_WHAT_TYPES_TAKE[match['type']]}, got {match['value']}"
    elif message.startswith("argument --"):
        message = message[len("argument ") :]
    return " ".join(message.split())


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr and exit status 2 (module doc)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line_message(message)}; see '{self.prog} --help'\n")
