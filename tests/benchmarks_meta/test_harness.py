"""Tests of the benchmark harness arithmetic: FLOP counting, MFU, throughput, modes, targets, records.

Expected FLOP counts come from the textbook formulas (2 FLOPs per multiply-add), not from the counter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from benchmarks import harness
from benchmarks.harness import (
    Measurement,
    Target,
    Workload,
    achieved_flops_per_s,
    count_flops,
    format_summary,
    images_per_second,
    model_flops_utilisation,
    peak_flops,
    resolve_mode,
    run_benchmark,
)
from impl.runtime.backend_flags import BackendFlags, backend_flags_scope, current_backend_flags

CPU = torch.device("cpu")


def test_count_flops_linear_is_two_per_multiply_add() -> None:
    layer = torch.nn.Linear(8, 16, bias=False)
    x = torch.randn(4, 8)
    assert count_flops(lambda: layer(x)) == 2 * 4 * 8 * 16


def test_count_flops_conv_matches_formula() -> None:
    conv = torch.nn.Conv2d(3, 5, kernel_size=3, padding=1, bias=False)
    x = torch.randn(2, 3, 6, 7)
    # every output element (2·5·6·7 of them) is a dot product of length 3·3·3
    assert count_flops(lambda: conv(x)) == 2 * (2 * 5 * 6 * 7) * (3 * 3 * 3)


def test_count_flops_includes_backward() -> None:
    layer = torch.nn.Linear(8, 16, bias=False)
    x = torch.randn(4, 8, requires_grad=True)

    def step() -> None:
        layer(x).sum().backward()

    # forward x@Wᵀ, backward grad_x = g@W and grad_W = gᵀ@x: three products of the same size
    assert count_flops(step) == 3 * 2 * 4 * 8 * 16


def test_mfu_and_throughput_arithmetic() -> None:
    assert achieved_flops_per_s(3_000_000, 0.5) == pytest.approx(6e6)
    assert model_flops_utilisation(10**12, 0.5, 4e12) == pytest.approx(0.5)
    assert model_flops_utilisation(10**12, 0.5, None) is None
    assert images_per_second(128, 0.032) == pytest.approx(4000.0)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: images_per_second(128, 0.0), "seconds_per_call"),
        (lambda: images_per_second(0, 1.0), "images_per_call"),
        (lambda: achieved_flops_per_s(1, -1.0), "seconds_per_call"),
        (lambda: model_flops_utilisation(1, 1.0, 0.0), "peak"),
        (lambda: resolve_mode("turbo", CPU), "mode"),
    ],
)
def test_bad_input_names_the_argument(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        call()


def test_cpu_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IDDPM_BENCH_COMPILE", raising=False)
    eager = resolve_mode("eager_fp32", CPU)
    fast = resolve_mode("fast", CPU)
    assert eager.autocast_dtype is None and not eager.channels_last and not eager.compile and not eager.tf32
    assert fast.autocast_dtype == torch.bfloat16 and fast.channels_last and fast.fused_optimizer
    assert not fast.compile, "CPU fast mode must not compile (too slow on CI cores)"
    assert not fast.compiled_sampling_step and fast.batched_nll_timesteps
    assert not eager.compiled_sampling_step and not eager.batched_nll_timesteps
    monkeypatch.setenv("IDDPM_BENCH_COMPILE", "1")
    compiling = resolve_mode("fast", CPU)
    assert compiling.compile and compiling.compiled_sampling_step
    monkeypatch.setenv("IDDPM_BENCH_COMPILE", "yes")
    with pytest.raises(ValueError, match="IDDPM_BENCH_COMPILE"):
        resolve_mode("fast", CPU)


def test_fast_mode_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IDDPM_BENCH_COMPILE_BACKEND", "IDDPM_BENCH_RECOMPUTE_NORMS"):
        monkeypatch.delenv(name, raising=False)
    fast = resolve_mode("fast", CPU)
    assert fast.compile_backend == "inductor" and fast.recompute_norms
    assert not resolve_mode("eager_fp32", CPU).recompute_norms
    monkeypatch.setenv("IDDPM_BENCH_COMPILE_BACKEND", "aot_eager")
    monkeypatch.setenv("IDDPM_BENCH_RECOMPUTE_NORMS", "0")
    fast = resolve_mode("fast", CPU)
    assert fast.compile_backend == "aot_eager" and not fast.recompute_norms
    monkeypatch.setenv("IDDPM_BENCH_COMPILE_BACKEND", "tvm")
    with pytest.raises(ValueError, match="IDDPM_BENCH_COMPILE_BACKEND"):
        resolve_mode("fast", CPU)
    monkeypatch.setenv("IDDPM_BENCH_COMPILE_BACKEND", "eager")
    monkeypatch.setenv("IDDPM_BENCH_RECOMPUTE_NORMS", "on")
    with pytest.raises(ValueError, match="IDDPM_BENCH_RECOMPUTE_NORMS"):
        resolve_mode("fast", CPU)


def test_mode_backend_flags_go_through_the_library_scope_and_are_restored() -> None:
    """The mode fixture sets TF32 / autotune with ``impl.runtime.backend_flags.backend_flags_scope``: the
    switch itself needs no GPU (it writes the process-wide torch.backends flags for a CUDA device)."""
    before = current_backend_flags()
    fast = resolve_mode("fast", torch.device("cuda"))
    eager = resolve_mode("eager_fp32", torch.device("cuda"))
    cuda = torch.device("cuda")
    with backend_flags_scope(cuda, allow_tf32=fast.tf32, cudnn_benchmark=fast.cudnn_benchmark):
        assert current_backend_flags() == BackendFlags(True, True, True)
        with backend_flags_scope(cuda, allow_tf32=eager.tf32, cudnn_benchmark=eager.cudnn_benchmark):
            assert current_backend_flags() == BackendFlags(False, False, False)
        assert current_backend_flags() == BackendFlags(True, True, True)
    assert current_backend_flags() == before
    flipped = backend_flags_scope(cuda, allow_tf32=not before.matmul_tf32, cudnn_benchmark=True)
    with pytest.raises(RuntimeError, match="boom"), flipped:
        raise RuntimeError("boom")
    assert current_backend_flags() == before
    with backend_flags_scope(CPU, allow_tf32=not before.matmul_tf32, cudnn_benchmark=True):
        assert current_backend_flags() == before, "off CUDA the scope must change nothing"


def test_peak_flops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IDDPM_PEAK_TFLOPS", raising=False)
    assert peak_flops(CPU) is None
    monkeypatch.setenv("IDDPM_PEAK_TFLOPS", "989.4")
    assert peak_flops(CPU) == pytest.approx(989.4e12)
    monkeypatch.setenv("IDDPM_PEAK_TFLOPS", "-1")
    with pytest.raises(ValueError, match="IDDPM_PEAK_TFLOPS"):
        peak_flops(CPU)


def test_target_applies_only_to_fast_paper_runs_on_the_named_device() -> None:
    target = Target("≥ 4,000 img/s", min_images_per_s=4000.0, max_peak_memory_gib=6.0)
    assert target.applies(mode="fast", scale="paper", name="NVIDIA H200")
    assert not target.applies(mode="eager_fp32", scale="paper", name="NVIDIA H200")
    assert not target.applies(mode="fast", scale="tiny", name="NVIDIA H200")
    assert not target.applies(mode="fast", scale="paper", name="NVIDIA H100 80GB HBM3")
    assert not target.applies(mode="fast", scale="paper", name="NVIDIA A100-SXM4-80GB")
    assert target.met(images_per_s=4100.0, peak_memory_gib=5.5, speedup=None) is True
    assert target.met(images_per_s=3900.0, peak_memory_gib=5.5, speedup=None) is False
    assert target.met(images_per_s=4100.0, peak_memory_gib=6.5, speedup=None) is False
    assert target.met(images_per_s=4100.0, peak_memory_gib=None, speedup=None) is None
    ratio = Target("≥ 4× eager", min_speedup_vs_eager=4.0)
    assert ratio.met(images_per_s=1.0, peak_memory_gib=None, speedup=4.5) is True
    assert ratio.met(images_per_s=1.0, peak_memory_gib=None, speedup=None) is None


class FakeBenchmark:
    """Stands in for pytest-benchmark's fixture: runs the function and reports a fixed median."""

    def __init__(self, *, disabled: bool, median: float) -> None:
        self.group: str | None = None
        self.extra_info: dict[str, object] = {}
        self.disabled = disabled
        self.stats: Any = None
        self.calls = 0
        self._median = median

    def __call__(self, function_to_benchmark: Callable[[], None]) -> Any:
        self.calls += 1
        function_to_benchmark()
        if not self.disabled:
            self.stats = SimpleNamespace(stats=SimpleNamespace(median=self._median))
        return None


@pytest.fixture
def clean_session() -> Iterator[None]:
    saved = dict(harness.SESSION_RESULTS)
    harness.SESSION_RESULTS.clear()
    yield
    harness.SESSION_RESULTS.clear()
    harness.SESSION_RESULTS.update(saved)


@pytest.mark.usefixtures("clean_session")
def test_run_benchmark_records_throughput_speedup_and_warms_up() -> None:
    calls: list[int] = []
    workload = Workload("w", "tiny", images_per_call=8)
    eager_bench = FakeBenchmark(disabled=False, median=0.4)
    eager = run_benchmark(
        eager_bench,
        lambda: calls.append(1),
        workload=workload,
        mode=resolve_mode("eager_fp32", CPU),
        device=CPU,
        flops_per_call=8_000,
        warmup_calls=2,
    )
    assert len(calls) == 3, "two warm-up calls outside the timer, then the timed call"
    assert eager_bench.group == "w"
    assert eager.images_per_s == pytest.approx(20.0)
    assert eager.achieved_tflops == pytest.approx(8_000 / 0.4 / 1e12)
    assert eager.mfu is None and eager.peak_memory_gib is None and eager.speedup_vs_eager is None
    assert eager_bench.extra_info["images_per_s"] == pytest.approx(20.0)
    assert eager_bench.extra_info["device"] == f"cpu ({torch.get_num_threads()} threads)"

    fast_bench = FakeBenchmark(disabled=False, median=0.1)
    fast = run_benchmark(
        fast_bench,
        lambda: None,
        workload=workload,
        mode=resolve_mode("fast", CPU),
        device=CPU,
        flops_per_call=None,
        warmup_calls=1,
    )
    assert fast.speedup_vs_eager == pytest.approx(4.0)
    assert fast_bench.extra_info["speedup_vs_eager_fp32"] == pytest.approx(4.0)
    lines = format_summary(harness.SESSION_RESULTS)
    assert len(lines) == 4 and "4.00" in lines[3]


@pytest.mark.usefixtures("clean_session")
def test_run_benchmark_disabled_times_the_single_call() -> None:
    bench = FakeBenchmark(disabled=True, median=123.0)
    m = run_benchmark(
        bench,
        lambda: None,
        workload=Workload("w", "tiny", images_per_call=1),
        mode=resolve_mode("eager_fp32", CPU),
        device=CPU,
        flops_per_call=None,
        warmup_calls=1,
    )
    assert bench.calls == 1
    assert m.timed_by == "single-call"
    assert m.seconds_per_call < 123.0


def test_run_benchmark_refuses_no_warmup() -> None:
    with pytest.raises(ValueError, match="warmup_calls"):
        run_benchmark(
            FakeBenchmark(disabled=True, median=1.0),
            lambda: None,
            workload=Workload("w", "tiny", images_per_call=1),
            mode=resolve_mode("eager_fp32", CPU),
            device=CPU,
            flops_per_call=None,
            warmup_calls=0,
        )


def test_measurement_extra_info_is_flat() -> None:
    m = Measurement("w", "fast", "tiny", "cpu", 1.0, "single-call", 2, 2.0, None, None, None, None)
    info = m.as_extra_info()
    assert info["workload"] == "w" and info["images_per_s"] == 2.0 and info["speedup_vs_eager_fp32"] is None


def test_report_table_derives_throughput_from_the_saved_median() -> None:
    from benchmarks.report import results_table

    saved = {
        "benchmarks": [
            {
                "group": "train_step/cifar10",
                "stats": {"median": 0.032},
                "extra_info": {
                    "workload": "train_step/cifar10",
                    "mode": "fast",
                    "images_per_call": 128,
                    "speedup_vs_eager_fp32": 5.0,
                    "achieved_tflops": 201.0,
                    "mfu": 0.2031,
                    "peak_memory_gib": 5.5,
                    "target_met": True,
                },
            }
        ]
    }
    row = results_table(saved).splitlines()[2]
    # 128 images / 0.032 s = 4,000 img/s
    assert row == "| train_step/cifar10 | fast | 0.032 | 4,000.0 | 5.00 | 201 | 20.3 % | 5.50 | yes |"


def test_report_table_takes_a_record_without_images_per_call() -> None:
    """The data-pipeline benchmark records images/s itself (no images_per_call): the table still renders."""
    from benchmarks.report import results_table

    saved = {
        "benchmarks": [
            {
                "group": "data_pipeline/64x64",
                "stats": {"median": 0.5},
                "extra_info": {"reader": "npy", "images_per_s": 1234.5},
            },
            {
                "group": "train_step/cifar10",
                "stats": {"median": 0.25},
                "extra_info": {"mode": "fast", "images_per_call": 128},
            },
        ]
    }
    table = results_table(saved)
    assert "| npy | 0.5 | 1,234.5 |" in table
    assert "| fast | 0.25 | 512.0 |" in table
