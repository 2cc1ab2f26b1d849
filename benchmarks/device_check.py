"""The bookkeeping of the device check (``benchmarks/device_check.sh``, ``make gpu-check``).

The shell script runs the steps, each under ``timeout`` with its output in ``$OUT/logs/<step>.log``; this
module does what is easier in Python, with the standard library only at import time (so it can report a
missing ``torch`` instead of failing on it):

- ``imports``: every module the check needs is importable, else name the missing one at once;
  writes ``$OUT/environment.json`` (python, torch, CUDA, the device, dry run or not);
- ``record``: turn one step's exit status, time, junit report and output files into a status line,
  appended to ``$OUT/logs/steps.jsonl``;
- ``summary``: merge the per-step benchmark JSON into ``$OUT/benchmarks.json`` (+ ``benchmarks.md``), print
  the summary table and write it to ``$OUT/summary.txt``; exit 1 when any step failed or timed out.

Statuses: ``passed``, ``failed``, ``timeout``, ``skipped: no CUDA`` (a CUDA step on a machine without one,
the dry run's expected outcome: it is never reported as passing), ``not selected`` (left out by
``IDDPM_CHECK_ONLY``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# import name -> distribution name, in the order they are checked (torch first: everything needs it)
REQUIRED_MODULES: tuple[tuple[str, str], ...] = (
    ("torch", "torch"),
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("sklearn", "scikit-learn"),
    ("safetensors", "safetensors"),
    ("tqdm", "tqdm"),
    ("PIL", "Pillow"),
    ("pytest", "pytest"),
    ("pytest_benchmark", "pytest-benchmark"),
    ("hypothesis", "hypothesis"),
)
# the tree itself, importable from the repository root with PYTHONPATH=.
TREE_MODULES: tuple[str, ...] = ("reference", "impl", "benchmarks.harness")
TIMEOUT_CODES = (124, 137)  # timeout(1): the cap was reached (124), or the kill after the grace period (137)
FAILING = ("failed", "timeout")
STATUS_NO_CUDA = "skipped: no CUDA"


@dataclass(frozen=True)
class JunitCounts:
    """The totals of one junit report."""

    tests: int
    failures: int
    errors: int
    skipped: int

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


@dataclass(frozen=True)
class StepResult:
    """One line of the summary: the step, its status, its time, its cap and what it found."""

    step: str
    status: str
    seconds: float
    cap_s: int
    detail: str = ""


def read_junit(path: Path) -> JunitCounts:
    """Totals of a pytest ``--junitxml`` report (summed over its test suites)."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in total:
            total[key] += int(suite.get(key, "0"))
    return JunitCounts(**total)


def describe_counts(counts: JunitCounts) -> str:
    """``"3 passed, 1 failed, 0 errors, 2 skipped"``."""
    return (
        f"{counts.passed} passed, {counts.failures} failed, {counts.errors} errors, {counts.skipped} skipped"
    )


def benchmark_detail(saved: dict[str, Any]) -> str:
    """What a benchmark JSON holds: how many records, and the issue targets met / missed among them."""
    records = saved.get("benchmarks", [])
    verdicts = [b.get("extra_info", {}).get("target_met") for b in records]
    detail = f"{len(records)} benchmark records"
    judged = [v for v in verdicts if v is not None]
    if judged:
        detail += f"; targets met {sum(1 for v in judged if v)}, missed {sum(1 for v in judged if not v)}"
    return detail


def profile_detail(report: dict[str, Any]) -> str:
    """The profile's headline counts per workload (kernels, launches, graph launches per step, syncs)."""
    parts = [f"{name}: FAILED" for name in report.get("errors", {})]
    for name, w in report.get("workloads", {}).items():
        parts.append(
            f"{name}: {w['kernels_executed_per_step']:.0f} kernels/step, "
            f"{w['kernel_launch_calls_per_step']:.0f} launches/step, "
            f"{w['graph_launch_calls_per_step']:.0f} graph launches/step, {w['host_sync_calls_total']} syncs"
        )
    return "; ".join(parts)


def step_status(
    *,
    rc: int,
    cap_s: int,
    counts: JunitCounts | None,
    cuda_step: bool,
    cuda_available: bool,
    missing_outputs: list[str],
) -> tuple[str, str]:
    """(status, detail) of one step from its exit status, its junit totals and its expected outputs.

    A timeout outranks everything; then failing tests; then a CUDA step on a machine without CUDA is
    ``skipped: no CUDA`` whatever ran on the CPU beside it; then a non-zero exit or a missing output fails.
    """
    counted = "" if counts is None else describe_counts(counts)
    if rc in TIMEOUT_CODES:
        return "timeout", f"stopped at its {cap_s} s cap" + (f"; {counted}" if counted else "")
    if counts is not None and (counts.failures or counts.errors):
        return "failed", counted
    if cuda_step and not cuda_available:
        return STATUS_NO_CUDA, counted
    if rc != 0:
        reason = "no tests collected" if rc == 5 and counts is not None else f"exit status {rc}"
        return "failed", reason + (f"; {counted}" if counted else "")
    if missing_outputs:
        return "failed", "missing output: " + ", ".join(missing_outputs)
    return "passed", counted


def format_summary(results: list[StepResult], header: str) -> list[str]:
    """The summary table: one line per step (step, status, seconds, cap, detail) and an overall line."""
    lines = [header, f"{'step':<22} {'status':<17} {'seconds':>8} {'cap s':>6}  detail"]
    for r in results:
        lines.append(f"{r.step:<22} {r.status:<17} {r.seconds:>8.1f} {r.cap_s:>6}  {r.detail}")
    bad = [r.step for r in results if r.status in FAILING]
    total = sum(r.seconds for r in results)
    verdict = "FAILED: " + ", ".join(bad) if bad else "no step failed"
    lines.append(f"overall: {verdict} ({total:.1f} s in steps)")
    return lines


def merge_benchmark_json(paths: list[Path]) -> dict[str, Any] | None:
    """One pytest-benchmark document from several runs of one session (the first one's machine info)."""
    merged: dict[str, Any] | None = None
    for path in paths:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if merged is None:
            merged = {**saved, "benchmarks": list(saved.get("benchmarks", []))}
        else:
            merged["benchmarks"].extend(saved.get("benchmarks", []))
    return merged


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------------------------------
# subcommands
# --------------------------------------------------------------------------------------------------
def check_imports(out: Path, *, dry_run: bool) -> int:
    """Import every needed module; name the first missing one and stop (exit 3), or say there is no CUDA."""
    for module, distribution in REQUIRED_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as error:
            print(
                f"device check: missing Python package {distribution} (import {module}: {error}); "
                "this machine has no network: bring it as a wheel and install it with "
                f"'python3 -m pip install --no-index <{distribution} wheel>'",
                file=sys.stderr,
            )
            return 3
    for module in TREE_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as error:
            print(f"device check: the tree does not import ({module}): {error}", file=sys.stderr)
            return 3
    import torch

    cuda = bool(torch.cuda.is_available())
    environment = {
        "dry_run": dry_run,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": cuda,
        "device": torch.cuda.get_device_name(0) if cuda else f"cpu ({platform.processor() or 'unknown'})",
        "machine_id": machine_id(),
    }
    atomic_write(out / "environment.json", json.dumps(environment, indent=2) + "\n")
    print("device check environment: " + ", ".join(f"{k}={v}" for k, v in environment.items()))
    if not cuda and not dry_run:
        print(
            "device check: torch sees no CUDA device; on a machine without one run the CPU dry run "
            "(IDDPM_DEVICE_DRY_RUN=1 or make gpu-check-dry)",
            file=sys.stderr,
        )
        return 4
    return 0


def machine_id() -> str:
    """pytest-benchmark's storage folder name for this interpreter, e.g. ``Linux-CPython-3.12-64bit``."""
    version = ".".join(platform.python_version_tuple()[:2])
    return f"{platform.system()}-{platform.python_implementation()}-{version}-{platform.architecture()[0]}"


def record_step(args: argparse.Namespace) -> int:
    """Judge one step and append its result to ``logs/steps.jsonl``; print its summary line."""
    out: Path = args.out
    logs = out / "logs"
    environment = json.loads((out / "environment.json").read_text(encoding="utf-8"))
    counts = None
    if args.junit is not None:
        junit = logs / args.junit
        counts = read_junit(junit) if junit.is_file() else None
        if counts is None and args.rc not in TIMEOUT_CODES:
            args.expect.append(f"logs/{args.junit}")
    missing = [name for name in args.expect if not (out / name).is_file()]
    status, detail = step_status(
        rc=args.rc,
        cap_s=args.cap,
        counts=counts,
        cuda_step=args.cuda_step,
        cuda_available=bool(environment["cuda_available"]),
        missing_outputs=missing,
    )
    if args.bench_json is not None and (logs / args.bench_json).is_file():
        saved = json.loads((logs / args.bench_json).read_text(encoding="utf-8"))
        if status == "passed" and not saved.get("benchmarks"):
            status, detail = "failed", "the benchmark JSON holds no records"
        detail = "; ".join(part for part in (detail, benchmark_detail(saved)) if part)
    if args.profile_json is not None and (out / args.profile_json).is_file():
        report = json.loads((out / args.profile_json).read_text(encoding="utf-8"))
        detail = "; ".join(part for part in (detail, profile_detail(report)) if part)
    result = StepResult(args.step, status, max(0.0, args.ended - args.started), args.cap, detail)
    with (logs / "steps.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(result)) + "\n")
    print(format_summary([result], "")[2])
    return 0


def write_summary(out: Path) -> int:
    """Merge the benchmark JSON, print and write ``summary.txt``; 1 when any step failed or timed out."""
    logs = out / "logs"
    steps_file = logs / "steps.jsonl"
    lines_in = steps_file.read_text(encoding="utf-8").splitlines() if steps_file.is_file() else []
    results = [StepResult(**json.loads(line)) for line in lines_in if line.strip()]
    bench_files = sorted(logs.glob("b*.json"))
    merged = merge_benchmark_json(bench_files) if bench_files else None
    if merged is not None:
        from benchmarks.report import results_table

        atomic_write(out / "benchmarks.json", json.dumps(merged, indent=2) + "\n")
        machine = merged.get("machine_info", {})
        table = results_table(merged) if merged["benchmarks"] else "(no benchmark records)"
        caption = f"device: {machine.get('iddpm_device')}, scale: {machine.get('iddpm_scale')}"
        atomic_write(out / "benchmarks.md", f"{caption}, torch {machine.get('torch')}\n\n{table}\n")
    environment_file = out / "environment.json"
    environment = (
        json.loads(environment_file.read_text(encoding="utf-8")) if environment_file.is_file() else {}
    )
    kind = (
        "DRY RUN (CPU, tiny configurations: no speed claim)" if environment.get("dry_run") else "device run"
    )
    header = (
        f"device check, {kind}: {environment.get('device', '?')}, torch {environment.get('torch', '?')}, "
        f"python {environment.get('python', '?')}"
    )
    lines = format_summary(results, header)
    atomic_write(out / "summary.txt", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if any(r.status in FAILING for r in results) or not results else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Bookkeeping of benchmarks/device_check.sh")
    commands = parser.add_subparsers(dest="command", required=True)
    imports = commands.add_parser("imports", help="check the imports, write environment.json")
    imports.add_argument("--out", type=Path, required=True)
    imports.add_argument("--dry-run", action="store_true")
    record = commands.add_parser("record", help="judge one step and append it to logs/steps.jsonl")
    record.add_argument("--out", type=Path, required=True)
    record.add_argument("--step", required=True)
    record.add_argument("--rc", type=int, required=True)
    record.add_argument("--cap", type=int, required=True)
    record.add_argument("--started", type=float, required=True)
    record.add_argument("--ended", type=float, required=True)
    record.add_argument("--junit", help="the step's junit report, relative to $OUT/logs")
    record.add_argument("--bench-json", help="the step's benchmark JSON, relative to $OUT/logs")
    record.add_argument("--profile-json", help="the step's profile report, relative to $OUT")
    record.add_argument("--expect", action="append", default=[], help="an output relative to $OUT")
    record.add_argument("--cuda-step", action="store_true", help="the step needs CUDA to mean anything")
    summary = commands.add_parser("summary", help="write summary.txt and benchmarks.json")
    summary.add_argument("--out", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "imports":
        return check_imports(args.out, dry_run=args.dry_run)
    if args.command == "record":
        return record_step(args)
    return write_summary(args.out)


if __name__ == "__main__":
    raise SystemExit(main())
