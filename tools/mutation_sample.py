"""Mutation testing of `impl/diffusion/` and `impl/sampling/` against `pytest properties/`, on a sample.

mutmut 3 (configured under `[tool.mutmut]` in pyproject.toml) mutates every function of those packages and
runs, for each mutant, the properties that call the mutated function.  It has no option to test a random
subset, and the whole set takes hours on two cores, so this script

1. generates every mutant (mutmut's own generation step, without running anything),
2. lists their names from mutmut's `mutants/**/*.py.meta` files,
3. draws a seeded random sample of them (the same seed and source give the same sample),
4. runs `mutmut run <names…>` on the sample, and
5. prints the score: killed / (sampled − skipped − not checked), a timeout counting as killed; a mutant
   that no property reaches ("no tests") counts as surviving.

Usage (from the repository root; `make mutation` runs the default):

    python tools/mutation_sample.py [--sample N] [--seed S] [--max-children K] [--keep]

It runs with `CI=true` (the derandomized Hypothesis profile, so results repeat) and without `PYTHONPATH`
(which would put the unmutated source ahead of mutmut's copy).  `mutmut show NAME` prints a mutant's diff
afterwards; `mutants/` is deleted and rebuilt at the start of every run unless `--keep` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

MUTANTS_DIR = Path("mutants")
MUTATED_PACKAGES = ("impl/diffusion", "impl/sampling")
DEFAULT_SAMPLE = 300  # about 30 minutes on two cores; see docs/testing.md ("Time")
DEFAULT_SEED = 20260101

# mutmut's generation step, run in a child process so that mutmut's global state stays out of this one.
# It is not a public API (mutmut 3.8): if it moves, pyproject.toml pins the range this was written for.
_GENERATE = """
from mutmut.__main__ import create_mutants
from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir
import os
os.makedirs("mutants", exist_ok=True)
copy_src_dir()
copy_also_copy_files()
stats = create_mutants(int(os.environ.get("MUTMUT_GENERATE_CHILDREN", "2")))
print(f"generated mutants in {stats.mutated} files ({stats.ignored} copied unmutated)")
"""

DETECTED = frozenset({"killed", "timeout", "segfault", "caught by type check"})
UNCOUNTED = frozenset({"skipped", "not checked", "check was interrupted by user"})


def mutation_env(base: Mapping[str, str]) -> dict[str, str]:
    """The environment mutmut runs in: no PYTHONPATH, the CI Hypothesis profile, one BLAS/OpenMP thread."""
    env = {k: v for k, v in base.items() if k != "PYTHONPATH"}
    env["CI"] = "true"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def mutant_names(meta_files: Iterable[Path]) -> list[str]:
    """Every mutant name recorded in mutmut's `.meta` files, sorted (so a seeded sample is reproducible)."""
    names: set[str] = set()
    for path in meta_files:
        names.update(json.loads(path.read_text(encoding="utf-8"))["exit_code_by_key"])
    return sorted(names)


def draw_sample(names: Sequence[str], size: int, seed: int) -> list[str]:
    """`size` distinct names drawn with `random.Random(seed)` (all if fewer), whatever order they come in."""
    if size < 1:
        raise ValueError(f"size: expected a positive sample size, got {size}")
    if size >= len(names):
        return sorted(names)
    return sorted(random.Random(seed).sample(sorted(names), size))


def mutation_score(statuses: Mapping[str, str]) -> tuple[int, int, float]:
    """(detected, counted, detected/counted): timeouts count as detected; skipped/unchecked do not count."""
    counted = [status for status in statuses.values() if status not in UNCOUNTED]
    detected = sum(status in DETECTED for status in counted)
    return detected, len(counted), (detected / len(counted) if counted else float("nan"))


def _meta_files() -> list[Path]:
    return sorted(p for package in MUTATED_PACKAGES for p in (MUTANTS_DIR / package).rglob("*.py.meta"))


def _statuses(sample: Sequence[str]) -> dict[str, str]:
    from mutmut.stats import status_by_exit_code

    codes: dict[str, int | None] = {}
    for path in _meta_files():
        codes.update(json.loads(path.read_text(encoding="utf-8"))["exit_code_by_key"])
    return {name: str(status_by_exit_code[codes.get(name)]) for name in sample}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sample", type=int, default=DEFAULT_SAMPLE, help="how many mutants (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="sampling seed (default %(default)s)")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutmut workers (default 2)")
    parser.add_argument("--keep", action="store_true", help="reuse an existing mutants/ folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.sample < 1:
        print(f"--sample: expected a positive integer, got {args.sample}", file=sys.stderr)
        return 2
    if not Path("pyproject.toml").is_file():
        print("run from the repository root (no pyproject.toml here)", file=sys.stderr)
        return 2
    env = mutation_env(os.environ)
    if MUTANTS_DIR.exists() and not args.keep:
        shutil.rmtree(MUTANTS_DIR)
    env["MUTMUT_GENERATE_CHILDREN"] = str(args.max_children)
    subprocess.run([sys.executable, "-c", _GENERATE], env=env, check=True, stdout=subprocess.DEVNULL)
    names = mutant_names(_meta_files())
    sample = draw_sample(names, args.sample, args.seed)
    print(f"{len(names)} mutants in {', '.join(MUTATED_PACKAGES)}; testing {len(sample)} (seed {args.seed})")
    mutmut = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children), *sample]
    run = subprocess.run(mutmut, env=env, check=False)
    if run.returncode != 0:
        print(f"mutmut run exited with {run.returncode}", file=sys.stderr)
        return run.returncode
    statuses = _statuses(sample)
    detected, counted, score = mutation_score(statuses)
    print("\nstatus counts: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(statuses.values()).items())))
    for name, status in statuses.items():
        if status not in DETECTED:
            print(f"  {status}: {name}")
    print(
        f"\nmutation score: {detected}/{counted} = {score:.1%} (sample {len(sample)} of {len(names)}, "
        f"seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
