"""``python -m reference --schedule cosine --steps 10``: print the schedule table of the oracle.

Columns: t, beta, alpha_bar, posterior variance, posterior log-variance clipped.  Bad flags print one
error line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from reference.schedule import SCHEDULE_NAMES, diffusion_tables, get_named_beta_schedule

USAGE_ERROR = 2


class _OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="python -m reference", description="Print a diffusion schedule table (float64)."
    )
    parser.add_argument("--schedule", default="cosine", help=f"one of: {', '.join(SCHEDULE_NAMES)}")
    parser.add_argument("--steps", default="1000", help="number of diffusion steps T (integer >= 1)")
    return parser


def format_table(schedule: str, steps: int) -> str:
    """The schedule table as text, one row per timestep."""
    tab = diffusion_tables(get_named_beta_schedule(schedule, steps))
    names = ("beta", "alpha_bar", "posterior_variance", "posterior_log_var_clipped")
    header = f"{'t':>6} " + " ".join(f"{name:>26}" for name in names)
    rows = [header]
    for t in range(tab.num_timesteps):
        rows.append(
            f"{t:>6} {tab.betas[t]:>26.17g} {tab.alphas_cumprod[t]:>26.17g} "
            f"{tab.posterior_variance[t]:>26.17g} {tab.posterior_log_variance_clipped[t]:>26.17g}"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, print the table; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        steps = int(args.steps)
    except ValueError:
        parser.error(f"argument --steps: expected an integer, got {args.steps!r}")
    try:
        text = format_table(args.schedule, steps)
    except ValueError as exc:
        parser.error(f"argument --{'schedule' if str(exc).startswith('name') else 'steps'}: {exc}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
