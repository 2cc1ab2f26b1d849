"""Tests of the prepared device check without a GPU: the script's dry run and its bookkeeping.

The whole dry run (every step) is ``make gpu-check-dry``, part of ``make test``; here the script runs one
or two steps at a time, and the bookkeeping is checked against hand-computed values.  The profiler
analysis is tested in ``test_profile_step.py``, the ``cuda`` marker and its audit in
``test_cuda_marker.py``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from benchmarks import device_check
from benchmarks.device_check import JunitCounts, StepResult, step_status

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "device_check.sh"
STEPS = (
    "a_cuda_tests",
    "b1_train_cifar10",
    "b2_sample_loop",
    "b3_calc_bpd",
    "b4_train_imagenet64",
    "b5_other_workloads",
    "b6_eval_and_data",
    "c_profile",
)
DEVICE_TOOL_FILE_LIMIT = 8  # the device tool brings back at most 8 files from $OUT


def run_check(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "OUT": str(out),
        "IDDPM_DEVICE_DRY_RUN": "1",
        "PYTHON": sys.executable,
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=environ, capture_output=True, text=True, timeout=900, check=False
    )


def summary_rows(out: Path) -> dict[str, str]:
    """step -> the status column of summary.txt."""
    rows = {}
    for line in (out / "summary.txt").read_text(encoding="utf-8").splitlines():
        for step in STEPS:
            if line.startswith(step + " "):
                rows[step] = re.split(r"\s{2,}", line.strip())[1]
    return rows


# --------------------------------------------------------------------------------------------------
# the script, one step at a time
# --------------------------------------------------------------------------------------------------
def summary_caps(out: Path) -> dict[str, int]:
    """step -> the cap column of summary.txt (seconds)."""
    caps = {}
    for line in (out / "summary.txt").read_text(encoding="utf-8").splitlines():
        for step in STEPS:
            if line.startswith(step + " "):
                caps[step] = int(re.split(r"\s{2,}", line.strip())[3])
    return caps


def test_dry_run_of_a_benchmark_step_and_the_profile_writes_summary_json_and_archive(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_check(out, IDDPM_CHECK_ONLY="b3_calc_bpd c_profile")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    selected = ("b3_calc_bpd", "c_profile")
    assert summary_rows(out) == {step: ("passed" if step in selected else "not selected") for step in STEPS}
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert summary.startswith("device check, DRY RUN")
    assert summary.rstrip().splitlines()[-1].startswith("overall: no step failed")
    assert "train_step: 0 kernels/step" in summary  # the profile's counts, zero by construction on the CPU
    assert done.stdout.rstrip().endswith(summary.rstrip()), "the summary must be the last thing printed"
    # dry-run caps are 3x the device's (b3 35 s, c 70 s); c also gets what b3 left unused
    caps = summary_caps(out)
    assert caps["b3_calc_bpd"] == 105 and 210 < caps["c_profile"] <= 210 + 105

    left = sorted(p.name for p in out.iterdir())
    assert left == [
        "benchmarks.json",
        "benchmarks.md",
        "environment.json",
        "logs.tar.gz",
        "profile.json",
        "profile.txt",
        "summary.txt",
    ]
    assert len(left) <= DEVICE_TOOL_FILE_LIMIT
    saved = json.loads((out / "benchmarks.json").read_text(encoding="utf-8"))
    infos = [b["extra_info"] for b in saved["benchmarks"]]
    assert sorted(i["mode"] for i in infos) == ["eager_fp32", "fast"]
    assert {i["workload"] for i in infos} == {"calc_bpd_loop_slice/cifar10"}
    assert {i["scale"] for i in infos} == {"tiny"}
    assert all(b["stats"]["rounds"] >= 1 for b in saved["benchmarks"])
    assert saved["machine_info"]["iddpm_scale"] == "tiny"
    assert "calc_bpd_loop_slice/cifar10" in (out / "benchmarks.md").read_text(encoding="utf-8")
    environment = json.loads((out / "environment.json").read_text(encoding="utf-8"))
    assert environment["dry_run"] is True

    report = json.loads((out / "profile.json").read_text(encoding="utf-8"))
    assert report["device"] == "cpu" and report["scale"] == "tiny" and report["errors"] == {}
    train, sample = report["workloads"]["train_step"], report["workloads"]["sample_loop"]
    assert train["steps"] == 1 and sample["steps"] == 50
    for workload in (train, sample):
        assert workload["ranked_by"].startswith("self CPU time")
        assert len(workload["top"]) == 20
        totals = [row["total_us"] for row in workload["top"]]
        assert totals == sorted(totals, reverse=True) and totals[0] > 0
        assert workload["kernel_launch_calls"] == 0 and workload["host_sync_calls_total"] == 0
        assert workload["mode_settings"]["name"] == "fast"
    text = (out / "profile.txt").read_text(encoding="utf-8")
    assert "== train_step (train_step/cifar10" in text and "== sample_loop (sample_loop_50_steps" in text

    with tarfile.open(out / "logs.tar.gz") as archive:
        members = set(archive.getnames())
    for name in ("imports.log", "steps.jsonl", "b3_calc_bpd.log", "b3_calc_bpd.xml", "b3_calc_bpd.json"):
        assert f"logs/{name}" in members
    assert "logs/c_profile.log" in members


def test_a_step_over_its_cap_is_a_timeout_and_fails_the_check(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_check(out, "--keep-logs", IDDPM_CHECK_ONLY="a_cuda_tests", CAP_a_cuda_tests="1")
    assert done.returncode == 1
    assert summary_rows(out)["a_cuda_tests"] == "timeout"
    assert "overall: FAILED: a_cuda_tests" in (out / "summary.txt").read_text(encoding="utf-8")
    assert (out / "logs" / "a_cuda_tests.log").is_file(), "--keep-logs keeps the loose logs"
    assert (out / "logs.tar.gz").is_file()


def test_outside_the_dry_run_a_machine_without_cuda_stops_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_check(out, IDDPM_DEVICE_DRY_RUN="0", CUDA_VISIBLE_DEVICES="")  # no device, even on a GPU host
    assert done.returncode == 4
    assert "no CUDA device" in done.stdout + done.stderr
    assert "stopped before its steps" in (out / "summary.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"IDDPM_DEVICE_DRY_RUN": "2"}, (), "IDDPM_DEVICE_DRY_RUN must be 0 or 1"),
        ({"IDDPM_CHECK_ONLY": "b9_nothing"}, (), "unknown step 'b9_nothing'"),
        ({"CAP_SCALE": "fast"}, (), "CAP_SCALE must be a whole number"),
        ({"CAP_c_profile": "1.5"}, (), "CAP_c_profile must be a whole number of seconds"),
        ({}, ("--fast",), "unknown argument '--fast'"),
    ],
)
def test_bad_settings_are_one_line_usage_errors(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "out"
    done = run_check(out, *args, **env)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists(), "nothing is written before the settings are checked"


def test_a_non_empty_out_is_kept_unless_overwrite_and_overwrite_removes_only_its_own_files(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.txt").write_text("a previous check\n", encoding="utf-8")
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    refused = run_check(out)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    assert (out / "summary.txt").read_text(encoding="utf-8") == "a previous check\n"

    done = run_check(out, "--overwrite", IDDPM_CHECK_ONLY="c_profile", CAP_c_profile="1")
    assert done.returncode == 1  # the profile cannot finish in 1 s: a timeout, recorded as such
    assert summary_rows(out)["c_profile"] == "timeout"
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine\n"


def test_the_script_runs_every_benchmark_of_the_suite() -> None:
    """Every test function of ``benchmarks/test_*.py`` is selected by some b-step (whole file or by name)."""
    text = SCRIPT.read_text(encoding="utf-8")
    selections = set(re.findall(r"benchmarks/(test_\w+\.py)(?:::(\w+))?", text))
    whole_files = {file for file, name in selections if not name}
    by_name = {(file, name) for file, name in selections if name}
    for path in sorted((REPO / "benchmarks").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                covered = path.name in whole_files or (path.name, node.name) in by_name
                assert covered, f"{path.name}::{node.name} is in no step of device_check.sh"


def test_make_test_runs_the_dry_run_after_the_benchmark_smoke_test() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    test_line = next(line for line in makefile.splitlines() if line.startswith("test:"))
    prerequisites = test_line.split(":", 1)[1].split()
    assert prerequisites.index("gpu-check-dry") == prerequisites.index("benchmarks-smoke") + 1
    recipe = makefile.split("gpu-check-dry: venv\n", 1)[1].splitlines()[0]
    assert "IDDPM_DEVICE_DRY_RUN=1" in recipe and "benchmarks/device_check.sh" in recipe


# --------------------------------------------------------------------------------------------------
# the bookkeeping
# --------------------------------------------------------------------------------------------------
def status(**overrides: Any) -> tuple[str, str]:
    arguments: dict[str, Any] = {
        "rc": 0,
        "cap_s": 60,
        "counts": JunitCounts(tests=4, failures=0, errors=0, skipped=1),
        "cuda_step": False,
        "cuda_available": True,
        "missing_outputs": [],
    }
    arguments.update(overrides)
    return step_status(**arguments)


def test_step_status_rules() -> None:
    assert status() == ("passed", "3 passed, 0 failed, 0 errors, 1 skipped")
    failing = JunitCounts(tests=4, failures=1, errors=0, skipped=0)
    assert status(rc=124, counts=failing)[0] == "timeout"
    assert status(rc=137, counts=None) == ("timeout", "stopped at its 60 s cap")
    assert status(rc=1, counts=failing)[0] == "failed"
    # without CUDA a CUDA step is skipped, even when some optional-CUDA test passed on the CPU ...
    cpu_run = JunitCounts(tests=61, failures=0, errors=0, skipped=60)
    assert status(counts=cpu_run, cuda_step=True, cuda_available=False)[0] == "skipped: no CUDA"
    # ... but a failure on the CPU is still a failure
    assert status(rc=1, counts=failing, cuda_step=True, cuda_available=False)[0] == "failed"
    assert status(counts=cpu_run, cuda_step=True, cuda_available=True)[0] == "passed"
    nothing = JunitCounts(tests=0, failures=0, errors=0, skipped=0)
    assert status(rc=5, counts=nothing)[1].startswith("no tests collected")
    assert status(rc=3, counts=None) == ("failed", "exit status 3")
    assert status(missing_outputs=["profile.json"]) == ("failed", "missing output: profile.json")


def test_read_junit_sums_every_suite(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuites><testsuite tests="5" failures="1" errors="0" skipped="2"/>'
        '<testsuite tests="3" failures="0" errors="1" skipped="0"/></testsuites>',
        encoding="utf-8",
    )
    counts = device_check.read_junit(report)
    assert counts == JunitCounts(tests=8, failures=1, errors=1, skipped=2)
    assert counts.passed == 4


def test_summary_names_the_failing_steps_and_benchmark_detail_counts_targets() -> None:
    results = [
        StepResult("a_cuda_tests", "passed", 10.0, 90),
        StepResult("b1_train_cifar10", "timeout", 70.5, 70),
        StepResult("c_profile", "failed", 3.0, 45),
    ]
    lines = device_check.format_summary(results, "header")
    assert lines[0] == "header" and lines[1].split()[:3] == ["step", "status", "seconds"] and len(lines) == 6
    assert lines[-1] == "overall: FAILED: b1_train_cifar10, c_profile (83.5 s in steps)"
    assert device_check.format_summary(results[:1], "h")[-1].startswith("overall: no step failed")
    saved = {"benchmarks": [{"extra_info": {"target_met": v}} for v in (True, False, None, False)]}
    assert device_check.benchmark_detail(saved) == "4 benchmark records; targets met 1, missed 2"
    assert device_check.benchmark_detail({"benchmarks": []}) == "0 benchmark records"


def test_profile_detail_names_the_counts_and_the_failures() -> None:
    workload = {
        "kernels_executed_per_step": 812.4,
        "kernel_launch_calls_per_step": 3.0,
        "graph_launch_calls_per_step": 1.0,
        "host_sync_calls_total": 0,
    }
    report = {"workloads": {"sample_loop": workload}, "errors": {"train_step": "RuntimeError: x"}}
    assert device_check.profile_detail(report) == (
        "train_step: FAILED; sample_loop: 812 kernels/step, 3 launches/step, 1 graph launches/step, 0 syncs"
    )


def test_a_missing_package_is_named_at_once_with_the_wheel_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(device_check, "REQUIRED_MODULES", (("iddpm_no_such_module", "no-such-dist"),))
    assert device_check.check_imports(tmp_path, dry_run=True) == 3
    message = capsys.readouterr().err
    assert "no-such-dist" in message and "bring it as a wheel" in message
    assert not (tmp_path / "environment.json").exists()


def test_merge_keeps_every_record_and_the_first_machine_info(tmp_path: Path) -> None:
    first, second = tmp_path / "b1.json", tmp_path / "b2.json"
    first.write_text(json.dumps({"machine_info": {"m": 1}, "benchmarks": [{"n": 1}]}), encoding="utf-8")
    second.write_text(json.dumps({"machine_info": {"m": 2}, "benchmarks": [{"n": 2}, {"n": 3}]}), "utf-8")
    merged = device_check.merge_benchmark_json([first, second])
    assert merged == {"machine_info": {"m": 1}, "benchmarks": [{"n": 1}, {"n": 2}, {"n": 3}]}
