"""Tests of ``benchmarks/profile_step.py`` without a GPU: the trace analysis on CUDA-shaped events built
by hand (launch, graph-launch, sync and copy counts; the kernel ranking), the event conversion, and the
per-workload error handling.  The profile step itself runs on the CPU in ``test_device_check.py``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.profiler import DeviceType

from benchmarks import profile_step
from benchmarks.profile_step import TraceEvent, analyse


# --------------------------------------------------------------------------------------------------
# the profiler analysis (CUDA-shaped events built by hand) and the profile on the CPU
# --------------------------------------------------------------------------------------------------
def host(name: str, start: float, end: float | None = None) -> TraceEvent:
    return TraceEvent(name, False, start, start + 1.0 if end is None else end, 1.0)


def kernel(name: str, start: float, duration: float) -> TraceEvent:
    return TraceEvent(name, True, start, start + duration, duration)


def test_analyse_counts_launches_and_syncs_inside_the_range_and_ranks_device_time() -> None:
    events = [
        host("range", 0.0, 100.0),
        host("cudaLaunchKernel", 10.0),
        host("cudaLaunchKernel", 20.0),
        host("cudaGraphLaunch", 30.0),
        host("cudaStreamSynchronize", 40.0),
        host("cudaLaunchKernel", 150.0),  # after the range: not this run's
        host("cudaDeviceSynchronize", 160.0),  # the profiler's closing sync, after the range
        host("aten::add", 12.0),
        kernel("kernel_a", 11.0, 5.0),
        kernel("kernel_a", 21.0, 5.0),
        kernel("kernel_a", 31.0, 5.0),
        kernel("kernel_b", 41.0, 20.0),
        kernel("Memcpy DtoH (Device -> Pageable)", 45.0, 2.0),
        kernel("Memcpy HtoD (Pageable -> Device)", 5.0, 1.0),
    ]
    result = analyse(events, range_name="range", steps=2, top=3)
    assert result["host_range_us"] == 100.0
    assert result["kernels_executed"] == 4 and result["kernels_executed_per_step"] == 2.0
    assert result["device_kernel_time_us"] == 35.0
    assert result["kernel_launch_calls"] == 2 and result["kernel_launch_calls_per_step"] == 1.0
    assert result["graph_launch_calls"] == 1 and result["graph_launch_calls_per_step"] == 0.5
    assert result["host_sync_calls"] == {"cudaStreamSynchronize": 1}
    assert result["host_sync_calls_total"] == 1
    assert result["device_to_host_copies"] == 1 and result["host_to_device_copies"] == 1
    assert result["ranked_by"].startswith("device time")
    top = result["top"]
    assert [row["name"] for row in top] == ["kernel_b", "kernel_a", "Memcpy DtoH (Device -> Pageable)"]
    assert top[1]["calls"] == 3 and top[1]["mean_us"] == 5.0
    assert top[0]["share"] == pytest.approx(20.0 / 38.0) and top[1]["share"] == pytest.approx(15.0 / 38.0)


def test_analyse_without_device_events_ranks_cpu_ops_and_rejects_bad_arguments() -> None:
    events = [host("range", 0.0, 50.0), TraceEvent("aten::mm", False, 1.0, 9.0, 8.0), host("aten::add", 2.0)]
    result = analyse(events, range_name="range", steps=1, top=20)
    assert result["ranked_by"].startswith("self CPU time")
    assert [row["name"] for row in result["top"]] == ["aten::mm", "aten::add"]
    assert result["kernels_executed"] == 0 and result["kernel_launch_calls"] == 0
    with pytest.raises(ValueError, match="range_name"):
        analyse(events, range_name="missing", steps=1, top=5)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        analyse(events, range_name="range", steps=0, top=5)


def test_trace_events_drop_device_side_annotations_and_keep_host_ranges() -> None:
    def event(name: str, device: DeviceType, start: float, end: float, annotation: bool) -> Any:
        return SimpleNamespace(
            name=name,
            device_type=device,
            time_range=SimpleNamespace(start=start, end=end),
            self_cpu_time_total=0.5,
            is_user_annotation=annotation,
        )

    prof = SimpleNamespace(
        events=lambda: [
            event("range", DeviceType.CPU, 0.0, 10.0, True),
            event("range", DeviceType.CUDA, 1.0, 9.0, True),  # the range mirrored on the device timeline
            event("kernel_a", DeviceType.CUDA, 2.0, 5.0, False),
            event("aten::mm", DeviceType.CPU, 1.0, 3.0, False),
        ]
    )
    assert profile_step.trace_events(prof) == [
        TraceEvent("range", False, 0.0, 10.0, 0.5, annotation=True),
        TraceEvent("kernel_a", True, 2.0, 5.0, 3.0),
        TraceEvent("aten::mm", False, 1.0, 3.0, 0.5),
    ]


def test_a_failing_workload_is_recorded_and_the_other_still_profiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(device: torch.device, scale: str, top: int) -> dict[str, Any]:
        raise RuntimeError("graph capture refused")

    def fine(device: torch.device, scale: str, top: int) -> dict[str, Any]:
        result = analyse([host("r", 0.0, 5.0), host("aten::mm", 1.0)], range_name="r", steps=1, top=top)
        result.update(workload="fake/one", batch=1, profiled_wall_s=0.1, peak_memory_gib=None)
        return result

    monkeypatch.setattr(profile_step, "WORKLOADS", (("train_step", broken), ("sample_loop", fine)))
    assert profile_step.main(["--out", str(tmp_path), "--device", "cpu", "--scale", "tiny"]) == 1
    report = json.loads((tmp_path / "profile.json").read_text(encoding="utf-8"))
    assert report["errors"] == {"train_step": "RuntimeError: graph capture refused"}
    assert list(report["workloads"]) == ["sample_loop"]
    assert "train_step: FAILED: RuntimeError: graph capture refused" in (tmp_path / "profile.txt").read_text(
        encoding="utf-8"
    )


def test_profile_step_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as bad_top:
        profile_step.main(["--out", str(tmp_path), "--top", "0"])
    assert bad_top.value.code == 2
    with pytest.raises(SystemExit) as no_folder:
        profile_step.main(["--out", str(tmp_path / "missing")])
    assert no_folder.value.code == 2
