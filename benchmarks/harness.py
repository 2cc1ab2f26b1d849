"""Timing, FLOP counting, MFU and memory bookkeeping shared by every benchmark in this folder.

Rules every benchmark follows (see docs/performance.md):
- the timed function ends with a device synchronisation (``timed_call`` adds it), so a host clock measures
  the device work and not just the launch queue;
- warm-up calls (and therefore ``torch.compile`` compilation, cuDNN autotuning, allocator growth) run before
  the timer starts;
- FLOPs are counted once per workload with ``torch.utils.flop_counter.FlopCounterMode`` on the eager path
  (the same mathematics in every mode), never inside the timed region;
- images/s, achieved TFLOP/s, MFU, peak device memory and the device name go into ``benchmark.extra_info``.

Environment knobs (all optional):
``IDDPM_BENCH_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``; default: CUDA when available),
``IDDPM_BENCH_SCALE`` (``paper`` or ``tiny``; default: paper on CUDA, tiny on CPU),
``IDDPM_BENCH_COMPILE`` (``0``/``1``; default: 1 on CUDA when Triton is importable, 0 on CPU),
``IDDPM_BENCH_COMPILE_BACKEND`` (a ``torch.compile`` backend for the fast mode; default ``inductor``;
``aot_eager`` checks the compiled wiring on CPU in seconds, without code generation),
``IDDPM_BENCH_RECOMPUTE_NORMS`` (``0``/``1``; default 1: the fast mode's training recomputes the
norm/SiLU segments in the backward pass instead of storing them, see ``impl.nn.recompute``),
``IDDPM_PEAK_TFLOPS`` (dense bf16 peak used for MFU when the device is not in the table),
``IDDPM_BENCH_ENFORCE_TARGETS`` (``1``: fail a benchmark that misses its issue-6 target on the target device).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import torch
from torch.utils.flop_counter import FlopCounterMode

from impl.runtime.compile import TRAINING_COMPILE_BACKENDS

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)

MODE_NAMES: tuple[str, ...] = ("eager_fp32", "fast")
SCALE_NAMES: tuple[str, ...] = ("paper", "tiny")
GIB = float(2**30)

# Dense (no sparsity) bf16 tensor-core peaks from the vendor datasheets, in FLOP/s.  MFU is reported
# against this one yardstick in every mode, so eager-fp32 MFU reads as "fraction of what the chip offers".
# Order matters: the first substring found in the device name wins.
PEAK_BF16_DENSE_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0e12),
    ("H100 NVL", 835.0e12),
    ("H100", 989.4e12),  # SXM5 / HBM3
    ("H200", 989.4e12),
    ("H800", 989.4e12),
    ("A100", 312.0e12),
)


# --------------------------------------------------------------------------------------------------
# Device, scale and mode selection
# --------------------------------------------------------------------------------------------------
def select_device() -> torch.device:
    """The device the suite runs on: ``IDDPM_BENCH_DEVICE`` if set, else CUDA when available, else CPU."""
    requested = os.environ.get("IDDPM_BENCH_DEVICE", "").strip()
    if requested:
        device = torch.device(requested)
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"IDDPM_BENCH_DEVICE must be 'cpu' or 'cuda[:i]', got {requested!r}")
        return device
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def select_scale(device: torch.device) -> str:
    """``paper`` (the issue's configurations) on CUDA, ``tiny`` on CPU, unless ``IDDPM_BENCH_SCALE`` says."""
    requested = os.environ.get("IDDPM_BENCH_SCALE", "").strip()
    if requested:
        if requested not in SCALE_NAMES:
            raise ValueError(f"IDDPM_BENCH_SCALE must be one of {SCALE_NAMES}, got {requested!r}")
        return requested
    return "paper" if device.type == "cuda" else "tiny"


def device_name(device: torch.device) -> str:
    """A human-readable device name for the records (the GPU model, or the CPU with its thread count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def compile_enabled(device: torch.device) -> bool:
    """Whether the fast mode uses ``torch.compile``: on CUDA with Triton importable, never on CPU.

    CPU compilation of a U-Net takes minutes on the two-core CI runners, longer than the whole smoke run,
    so the CPU fast mode is bf16 autocast + channels-last + fused/foreach updates without compilation.
    """
    override = os.environ.get("IDDPM_BENCH_COMPILE", "").strip()
    if override:
        if override not in ("0", "1"):
            raise ValueError(f"IDDPM_BENCH_COMPILE must be '0' or '1', got {override!r}")
        return override == "1"
    return device.type == "cuda" and importlib.util.find_spec("triton") is not None


def compile_backend() -> str:
    """The ``torch.compile`` backend of the fast mode: ``IDDPM_BENCH_COMPILE_BACKEND`` or ``inductor``."""
    requested = os.environ.get("IDDPM_BENCH_COMPILE_BACKEND", "").strip() or "inductor"
    if requested not in TRAINING_COMPILE_BACKENDS:
        raise ValueError(
            f"IDDPM_BENCH_COMPILE_BACKEND must be one of {TRAINING_COMPILE_BACKENDS}, got {requested!r}"
        )
    return requested


def recompute_norms_enabled() -> bool:
    """Whether the fast mode's training recomputes norm/SiLU segments (``IDDPM_BENCH_RECOMPUTE_NORMS``)."""
    override = os.environ.get("IDDPM_BENCH_RECOMPUTE_NORMS", "").strip() or "1"
    if override not in ("0", "1"):
        raise ValueError(f"IDDPM_BENCH_RECOMPUTE_NORMS must be '0' or '1', got {override!r}")
    return override == "1"


@dataclass(frozen=True)
class Mode:
    """One way of running the same code: the in-repo eager fp32 baseline or the fast path."""

    name: str
    autocast_dtype: torch.dtype | None
    channels_last: bool
    sdpa_attention: bool
    fused_optimizer: bool
    foreach_ema: bool
    compile: bool
    tf32: bool
    cudnn_benchmark: bool
    compiled_sampling_step: bool
    batched_nll_timesteps: bool
    recompute_norms: bool
    compile_backend: str = "inductor"

    def describe(self) -> dict[str, object]:
        """JSON-friendly description stored in ``extra_info['mode_settings']``."""
        return {
            "name": self.name,
            "autocast_dtype": None if self.autocast_dtype is None else str(self.autocast_dtype),
            "channels_last": self.channels_last,
            "sdpa_attention": self.sdpa_attention,
            "fused_optimizer": self.fused_optimizer,
            "foreach_ema": self.foreach_ema,
            "compile": self.compile,
            "tf32": self.tf32,
            "cudnn_benchmark": self.cudnn_benchmark,
            "compiled_sampling_step": self.compiled_sampling_step,
            "batched_nll_timesteps": self.batched_nll_timesteps,
            "recompute_norms": self.recompute_norms,
            "compile_backend": self.compile_backend if self.compile else None,
        }


def resolve_mode(name: str, device: torch.device) -> Mode:
    """The settings of mode ``name`` on ``device``.

    ``eager_fp32``: strict float32 (TF32 off for matmuls and convolutions), NCHW, the plain attention
    einsums, a for-loop AdamW, no compilation, one timestep per network call in the NLL loop.  The
    library's EMA has a single implementation (``torch._foreach_lerp_``), so ``foreach_ema`` is true in
    both modes.
    ``fast``: bf16 autocast, channels-last, SDPA attention, fused AdamW, ``torch._foreach`` EMA, TF32 for
    whatever stays in fp32, cuDNN autotuning, NLL timesteps batched per network call
    (``calc_bpd_loop(timestep_batch=k)``), the U-Net's norm/SiLU segments recomputed in the training
    backward (``recompute_norms``), and, where ``compile_enabled`` allows, ``torch.compile`` of the whole
    training loss (``compile_scope="loss"``) and of each whole sampling step (``CompiledStepRunner``: CUDA
    graphs on CUDA).
    All of these go through the library's own switches, so a user gets the same code paths.
    """
    if name == "eager_fp32":
        return Mode(
            name,
            autocast_dtype=None,
            channels_last=False,
            sdpa_attention=False,
            fused_optimizer=False,
            foreach_ema=True,
            compile=False,
            tf32=False,
            cudnn_benchmark=False,
            compiled_sampling_step=False,
            batched_nll_timesteps=False,
            recompute_norms=False,
        )
    if name == "fast":
        cuda = device.type == "cuda"
        compiling = compile_enabled(device)
        return Mode(
            name,
            autocast_dtype=torch.bfloat16,
            channels_last=True,
            sdpa_attention=True,
            fused_optimizer=True,
            foreach_ema=True,
            compile=compiling,
            tf32=cuda,
            cudnn_benchmark=cuda,
            compiled_sampling_step=compiling,
            batched_nll_timesteps=True,
            recompute_norms=recompute_norms_enabled(),
            compile_backend=compile_backend(),
        )
    raise ValueError(f"mode must be one of {MODE_NAMES}, got {name!r}")


def autocast(mode: Mode, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` in the mode's low-precision dtype, or a no-op context for fp32 modes."""
    if mode.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=mode.autocast_dtype)


def to_memory_format(x: torch.Tensor, mode: Mode) -> torch.Tensor:
    """``x`` in channels-last layout when the mode asks for it and ``x`` is 4-D, else unchanged."""
    if mode.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def module_to_memory_format(module: ModuleT, mode: Mode) -> ModuleT:
    """``module`` with its 4-D weights in channels-last layout when the mode asks for it (in place)."""
    if mode.channels_last:
        module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module


def maybe_compile(fn: Callable[..., Any], mode: Mode) -> Callable[..., Any]:
    """``torch.compile(fn)`` in a compiling mode, else ``fn`` itself."""
    if not mode.compile:
        return fn
    compiled: Callable[..., Any] = torch.compile(fn, backend=mode.compile_backend)
    return compiled


def synchronize(device: torch.device) -> None:
    """Wait for all queued device work (no-op on CPU, where every op is already synchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """``fn`` followed by a device synchronisation: the function handed to pytest-benchmark's timer."""

    def call() -> None:
        fn()
        synchronize(device)

    return call


# --------------------------------------------------------------------------------------------------
# FLOPs, MFU, throughput
# --------------------------------------------------------------------------------------------------
def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of one call of ``fn`` as ``FlopCounterMode`` counts them (matmuls, convolutions, SDPA).

    A multiply-add counts as 2 FLOPs; element-wise work (norms, activations, the diffusion arithmetic) is
    not counted, so MFU measures the tensor-core work only.
    """
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def peak_flops(device: torch.device) -> float | None:
    """Dense bf16 peak FLOP/s of ``device`` (``IDDPM_PEAK_TFLOPS`` overrides; ``None`` when unknown/CPU)."""
    override = os.environ.get("IDDPM_PEAK_TFLOPS", "").strip()
    if override:
        value = float(override)
        if value <= 0:
            raise ValueError(f"IDDPM_PEAK_TFLOPS must be positive, got {override!r}")
        return value * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for substring, flops in PEAK_BF16_DENSE_FLOPS:
        if substring in name:
            return flops
    return None


def achieved_flops_per_s(flops_per_call: int, seconds_per_call: float) -> float:
    """Achieved rate = FLOPs of one call / seconds of one call."""
    if seconds_per_call <= 0:
        raise ValueError(f"seconds_per_call must be positive, got {seconds_per_call}")
    return flops_per_call / seconds_per_call


def model_flops_utilisation(flops_per_call: int, seconds_per_call: float, peak: float | None) -> float | None:
    """MFU = (FLOPs per call / seconds per call) / peak FLOP/s; ``None`` when the peak is unknown."""
    if peak is None:
        return None
    if peak <= 0:
        raise ValueError(f"peak must be positive, got {peak}")
    return achieved_flops_per_s(flops_per_call, seconds_per_call) / peak


def images_per_second(images_per_call: int, seconds_per_call: float) -> float:
    """Throughput = images processed by one call / seconds of one call."""
    if seconds_per_call <= 0:
        raise ValueError(f"seconds_per_call must be positive, got {seconds_per_call}")
    if images_per_call <= 0:
        raise ValueError(f"images_per_call must be positive, got {images_per_call}")
    return images_per_call / seconds_per_call


# --------------------------------------------------------------------------------------------------
# Targets and records
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """An issue-6 target; it judges only fast-mode, paper-scale runs on a device whose name has ``device``."""

    description: str
    min_images_per_s: float | None = None
    max_peak_memory_gib: float | None = None
    min_speedup_vs_eager: float | None = None
    device: str = "H100"

    def applies(self, *, mode: str, scale: str, name: str) -> bool:
        """Whether a run in ``mode`` at ``scale`` on the device called ``name`` is judged by this target."""
        return mode == "fast" and scale == "paper" and self.device in name

    def met(
        self, *, images_per_s: float, peak_memory_gib: float | None, speedup: float | None
    ) -> bool | None:
        """``True``/``False`` when every bound can be judged, ``None`` when some number is missing."""
        verdicts: list[bool] = []
        if self.min_images_per_s is not None:
            verdicts.append(images_per_s >= self.min_images_per_s)
        if self.max_peak_memory_gib is not None:
            if peak_memory_gib is None:
                return None
            verdicts.append(peak_memory_gib <= self.max_peak_memory_gib)
        if self.min_speedup_vs_eager is not None:
            if speedup is None:
                return None
            verdicts.append(speedup >= self.min_speedup_vs_eager)
        return all(verdicts)


@dataclass
class Measurement:
    """What one benchmark run produced (one workload in one mode)."""

    workload: str
    mode: str
    scale: str
    device: str
    seconds_per_call: float
    timed_by: str
    images_per_call: int
    images_per_s: float
    flops_per_call: int | None
    achieved_tflops: float | None
    mfu: float | None
    peak_memory_gib: float | None
    speedup_vs_eager: float | None = None
    target: str | None = None
    target_met: bool | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def as_extra_info(self) -> dict[str, object]:
        """The flat JSON-able dict stored in ``benchmark.extra_info``."""
        info: dict[str, object] = {
            "workload": self.workload,
            "mode": self.mode,
            "scale": self.scale,
            "device": self.device,
            "seconds_per_call": self.seconds_per_call,
            "timed_by": self.timed_by,
            "images_per_call": self.images_per_call,
            "images_per_s": self.images_per_s,
            "flops_per_call": self.flops_per_call,
            "achieved_tflops": self.achieved_tflops,
            "mfu": self.mfu,
            "peak_memory_gib": self.peak_memory_gib,
            "speedup_vs_eager_fp32": self.speedup_vs_eager,
            "target": self.target,
            "target_met": self.target_met,
        }
        info.update(self.extra)
        return info


# All measurements of this pytest session, keyed by (workload, mode): the fast mode reads the eager
# result of the same workload from here to report its speed-up, and the terminal summary prints them.
SESSION_RESULTS: dict[tuple[str, str], Measurement] = {}
# FLOPs per call of each workload, counted once (keyed by workload and scale).
_FLOP_CACHE: dict[tuple[str, str], int] = {}


class BenchmarkFixture(Protocol):
    """The parts of pytest-benchmark's fixture this module uses."""

    group: str | None
    extra_info: dict[str, object]
    disabled: bool
    stats: Any

    def __call__(self, function_to_benchmark: Callable[[], None]) -> Any: ...


@dataclass(frozen=True)
class Workload:
    """Identity of one timed workload: its group name, scale, and images processed per call."""

    name: str
    scale: str
    images_per_call: int
    target: Target | None = None


def flops_for(workload: Workload, eager_fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``workload``, counted on ``eager_fn`` the first time and cached after."""
    key = (workload.name, workload.scale)
    if key not in _FLOP_CACHE:
        _FLOP_CACHE[key] = count_flops(eager_fn)
    return _FLOP_CACHE[key]


def run_benchmark(
    benchmark: BenchmarkFixture,
    fn: Callable[[], object],
    *,
    workload: Workload,
    mode: Mode,
    device: torch.device,
    flops_per_call: int | None,
    warmup_calls: int,
    extra: dict[str, object] | None = None,
) -> Measurement:
    """Warm ``fn`` up, time it with pytest-benchmark (synchronised), and record the numbers in extra_info.

    With ``--benchmark-disable`` pytest-benchmark calls ``fn`` once without timing; that single call is then
    timed here with ``time.perf_counter`` (``timed_by='single-call'``), which is a smoke number only.
    """
    if warmup_calls < 1:
        raise ValueError(f"warmup_calls must be >= 1 (keeps compiling out of the timer), got {warmup_calls}")
    benchmark.group = workload.name
    call = timed_call(fn, device)
    for _ in range(warmup_calls):
        call()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if benchmark.disabled:
        start = time.perf_counter()
        benchmark(call)
        seconds = time.perf_counter() - start
        timed_by = "single-call"
    else:
        benchmark(call)
        seconds = float(benchmark.stats.stats.median)
        timed_by = "pytest-benchmark-median"
    peak_memory = torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None

    name = device_name(device)
    achieved = None if flops_per_call is None else achieved_flops_per_s(flops_per_call, seconds) / 1e12
    peak = peak_flops(device)
    mfu = None if flops_per_call is None else model_flops_utilisation(flops_per_call, seconds, peak)
    eager = SESSION_RESULTS.get((workload.name, "eager_fp32"))
    speedup = eager.seconds_per_call / seconds if (eager is not None and mode.name != "eager_fp32") else None
    measurement = Measurement(
        workload=workload.name,
        mode=mode.name,
        scale=workload.scale,
        device=name,
        seconds_per_call=seconds,
        timed_by=timed_by,
        images_per_call=workload.images_per_call,
        images_per_s=images_per_second(workload.images_per_call, seconds),
        flops_per_call=flops_per_call,
        achieved_tflops=achieved,
        mfu=mfu,
        peak_memory_gib=peak_memory,
        speedup_vs_eager=speedup,
        extra={"mode_settings": mode.describe(), "torch": torch.__version__, **(extra or {})},
    )
    target = workload.target
    if target is not None:
        measurement.target = target.description
        if target.applies(mode=mode.name, scale=workload.scale, name=name):
            measurement.target_met = target.met(
                images_per_s=measurement.images_per_s, peak_memory_gib=peak_memory, speedup=speedup
            )
    benchmark.extra_info.update(measurement.as_extra_info())
    SESSION_RESULTS[(workload.name, mode.name)] = measurement
    if (
        os.environ.get("IDDPM_BENCH_ENFORCE_TARGETS") == "1"
        and measurement.target_met is False
        and not benchmark.disabled
    ):
        described = target.description if target is not None else ""
        raise AssertionError(f"{workload.name} [{mode.name}] misses its target: {described}")
    return measurement


def format_summary(results: dict[tuple[str, str], Measurement]) -> list[str]:
    """The terminal table: one line per (workload, mode) with throughput, speed-up, MFU, memory, target."""
    header = (
        f"{'workload':<38} {'mode':<10} {'img/s':>10} {'x eager':>8} {'TFLOP/s':>8} {'MFU':>6} "
        f"{'peak GiB':>8} {'target':>7}  timed by"
    )
    lines = [header, "-" * len(header)]
    for (_, _), m in sorted(results.items()):
        speedup = "" if m.speedup_vs_eager is None else f"{m.speedup_vs_eager:.2f}"
        tflops = "" if m.achieved_tflops is None else f"{m.achieved_tflops:.3g}"
        mfu = "" if m.mfu is None else f"{100 * m.mfu:.3g}%"
        memory = "" if m.peak_memory_gib is None else f"{m.peak_memory_gib:.2f}"
        verdict = {None: "", True: "met", False: "MISSED"}[m.target_met]
        lines.append(
            f"{m.workload:<38} {m.mode:<10} {m.images_per_s:>10.1f} {speedup:>8} {tflops:>8} {mfu:>6} "
            f"{memory:>8} {verdict:>7}  {m.timed_by}"
        )
    return lines
