"""Fixtures and hooks of the benchmark suite: device, scale, mode parametrisation, machine info, summary.

Every benchmark takes the ``mode`` fixture, parametrised over ``eager_fp32`` (first, so the fast mode can
report its speed-up over it from the same session) and ``fast``.  Nothing here needs CUDA to import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from benchmarks.harness import (
    MODE_NAMES,
    SESSION_RESULTS,
    Mode,
    compile_enabled,
    device_name,
    format_summary,
    peak_flops,
    resolve_mode,
    select_device,
    select_scale,
)
from impl.runtime.backend_flags import backend_flags_scope


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The benchmark device (CUDA when available; ``IDDPM_BENCH_DEVICE`` overrides)."""
    return select_device()


@pytest.fixture(scope="session")
def scale(device: torch.device) -> str:
    """``paper`` on CUDA, ``tiny`` on CPU (``IDDPM_BENCH_SCALE`` overrides)."""
    return select_scale(device)


@pytest.fixture(params=MODE_NAMES)
def mode(request: pytest.FixtureRequest, device: torch.device) -> Iterator[Mode]:
    """The mode of this run, with the library's TF32 / cuDNN-autotune switches (CUDA only) set for the
    duration of the test and restored afterwards."""
    settings = resolve_mode(str(request.param), device)
    torch.manual_seed(0)
    with backend_flags_scope(device, allow_tf32=settings.tf32, cudnn_benchmark=settings.cudnn_benchmark):
        yield settings


def _cudnn_version() -> int | None:
    """cuDNN's version number, ``None`` on a build without it."""
    version: int | None = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
    return version


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record what the numbers were measured on: device name, torch/CUDA/cuDNN versions, threads, compile."""
    device = select_device()
    machine_info["iddpm_device"] = device_name(device)
    machine_info["iddpm_scale"] = select_scale(device)
    machine_info["torch"] = torch.__version__
    machine_info["torch_cuda"] = torch.version.cuda
    machine_info["cudnn"] = _cudnn_version()
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    machine_info["torch_compile_in_fast_mode"] = compile_enabled(device)
    machine_info["peak_bf16_flops"] = peak_flops(device)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print one table of every measurement of the session (throughput, speed-up, MFU, memory, target)."""
    if not SESSION_RESULTS:
        return
    device = select_device()
    terminalreporter.section(f"iddpm benchmarks on {device_name(device)} (scale: {select_scale(device)})")
    if device.type == "cpu":
        terminalreporter.write_line("CPU rows: tiny configurations, a smoke check, not a speed claim")
    for line in format_summary(SESSION_RESULTS):
        terminalreporter.write_line(line)
