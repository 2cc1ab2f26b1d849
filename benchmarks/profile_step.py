"""One fast training step and one 50-step respaced sampling run under ``torch.profiler``.

``python -m benchmarks.profile_step --out DIR [--device cuda] [--scale paper] [--top 20]``

Both workloads are the benchmark suite's, built in its ``fast`` mode through the library's own switches
(``benchmarks.builders``): the CIFAR-10 training step (bf16, channels-last, SDPA, fused AdamW, recomputed
norms, the whole loss compiled on CUDA) and the 50-step respaced sampling loop (the compiled step runner,
one CUDA graph per reverse step on CUDA).  Each is warmed up (compilation, graph capture, autotuning) and
then run once inside a ``record_function`` range under the profiler.  Written to ``DIR``:

- ``profile.txt``: per workload, the kernels with the most device time (name, calls, total, mean, share),
  kernel launches (host launch calls, CUDA-graph launches, kernels executed) per step, and host-device
  synchronisations (``cuda*Synchronize`` calls inside the range, device-to-host copies);
- ``profile.json``: the same numbers.

Without CUDA (the device check's dry run) the profiler records CPU activity only: the table then ranks
CPU operators by self time, and the launch and sync counts are zero by construction, not by measurement.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.profiler import DeviceType, ProfilerActivity, profile, record_function

from benchmarks import configs
from benchmarks.builders import build_model_and_diffusion, build_trainer, sampling_network
from benchmarks.harness import GIB, SCALE_NAMES, resolve_mode, select_device, select_scale, synchronize
from impl.runtime.backend_flags import backend_flags_scope

# host-side CUDA runtime / driver calls that put work on the device
LAUNCH_CALLS: tuple[str, ...] = (
    "cudaLaunchKernel",
    "cudaLaunchKernelExC",
    "cudaLaunchCooperativeKernel",
    "cuLaunchKernel",
    "cuLaunchKernelEx",
)
GRAPH_LAUNCH_CALLS: tuple[str, ...] = ("cudaGraphLaunch", "cuGraphLaunch")
# host-side calls that make the host wait for the device
SYNC_CALLS: tuple[str, ...] = (
    "cudaDeviceSynchronize",
    "cudaStreamSynchronize",
    "cudaEventSynchronize",
    "cuStreamSynchronize",
    "cuCtxSynchronize",
    "cudaMemcpy",  # the synchronous copy
)
TRAIN_RANGE = "iddpm.profile.train_step"
SAMPLE_RANGE = "iddpm.profile.sample_loop"


@dataclass(frozen=True)
class TraceEvent:
    """The parts of one profiler event the analysis reads (times in microseconds).

    ``annotation``: a ``record_function`` range (the check's own, or one that ``torch.compile`` and the
    library add), not an operator or a kernel.
    """

    name: str
    on_device: bool
    start_us: float
    end_us: float
    self_us: float
    annotation: bool = False


def trace_events(prof: Any) -> list[TraceEvent]:
    """The profiler's events as ``TraceEvent`` records.  Device events are kernels, copies and sets; the
    device-side mirrors of ``record_function`` ranges (``gpu_user_annotation``) are left out, since they
    span many kernels and are none themselves."""
    events = []
    for event in prof.events():
        on_device = event.device_type != DeviceType.CPU
        annotation = bool(getattr(event, "is_user_annotation", False))
        if on_device and annotation:
            continue
        start, end = float(event.time_range.start), float(event.time_range.end)
        self_us = end - start if on_device else float(event.self_cpu_time_total)
        events.append(TraceEvent(str(event.name), on_device, start, end, self_us, annotation))
    return events


def is_copy_or_set(name: str) -> bool:
    """Device copies and memsets (``Memcpy DtoH (Device -> Pageable)``, ``Memset (Device)``), not kernels."""
    return name.startswith(("Memcpy", "Memset"))


def range_window(events: Iterable[TraceEvent], range_name: str) -> tuple[float, float]:
    """Start and end of the host range ``range_name`` (the first one found)."""
    for event in events:
        if not event.on_device and event.name == range_name:
            return event.start_us, event.end_us
    raise ValueError(f"range_name {range_name!r} was not recorded by the profiler")


def count_calls(events: Iterable[TraceEvent], names: tuple[str, ...], window: tuple[float, float]) -> int:
    """Host calls named in ``names`` that start inside ``window``."""
    start, end = window
    return sum(1 for e in events if not e.on_device and e.name in names and start <= e.start_us <= end)


def top_rows(
    events: list[TraceEvent], top: int, *, exclude: tuple[str, ...]
) -> tuple[str, list[dict[str, Any]]]:
    """The ``top`` names with the most time: device kernels by device time when the trace has any, else
    CPU operators by self time.  Returns (what was ranked, rows with name, calls, total, mean, share)."""
    device = [e for e in events if e.on_device]
    if device:
        basis, chosen = "device time (CUDA kernels, copies and sets)", device
    else:
        basis = "self CPU time (no device events: CPU-only run)"
        chosen = [e for e in events if not e.on_device and not e.annotation and e.name not in exclude]
    totals: dict[str, list[float]] = {}
    for event in chosen:
        entry = totals.setdefault(event.name, [0.0, 0.0])
        entry[0] += 1
        entry[1] += event.self_us
    grand = sum(total for _, total in totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: -item[1][1])[:top]
    rows = [
        {
            "name": name,
            "calls": int(calls),
            "total_us": total,
            "mean_us": total / calls,
            "share": total / grand,
        }
        for name, (calls, total) in ranked
    ]
    return basis, rows


def analyse(events: list[TraceEvent], *, range_name: str, steps: int, top: int) -> dict[str, Any]:
    """Kernel table, launches per step and host-device syncs of one profiled run of ``steps`` steps."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    window = range_window(events, range_name)
    device = [e for e in events if e.on_device]
    kernels = [e for e in device if not is_copy_or_set(e.name)]
    launches = count_calls(events, LAUNCH_CALLS, window)
    graph_launches = count_calls(events, GRAPH_LAUNCH_CALLS, window)
    syncs = {name: count_calls(events, (name,), window) for name in SYNC_CALLS}
    basis, rows = top_rows(events, top, exclude=(range_name, *LAUNCH_CALLS, *GRAPH_LAUNCH_CALLS, *SYNC_CALLS))
    return {
        "steps": steps,
        "host_range_us": window[1] - window[0],
        "kernels_executed": len(kernels),
        "kernels_executed_per_step": len(kernels) / steps,
        "device_kernel_time_us": sum(e.self_us for e in kernels),
        "kernel_launch_calls": launches,
        "kernel_launch_calls_per_step": launches / steps,
        "graph_launch_calls": graph_launches,
        "graph_launch_calls_per_step": graph_launches / steps,
        "host_sync_calls": {name: count for name, count in syncs.items() if count},
        "host_sync_calls_total": sum(syncs.values()),
        "device_to_host_copies": sum(1 for e in device if e.name.startswith("Memcpy DtoH")),
        "host_to_device_copies": sum(1 for e in device if e.name.startswith("Memcpy HtoD")),
        "ranked_by": basis,
        "top": rows,
    }


def profiled(
    fn: Callable[[], object], device: torch.device, range_name: str
) -> tuple[list[TraceEvent], float]:
    """Run ``fn`` once inside ``range_name`` under the profiler (CUDA activity when on CUDA); wall seconds."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    synchronize(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        with record_function(range_name):
            fn()
        synchronize(device)  # outside the range: the kernels finish before the trace is collected
        seconds = time.perf_counter() - start
    return trace_events(prof), seconds


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None


def profile_train_step(device: torch.device, scale: str, top: int) -> dict[str, Any]:
    """One fast-mode CIFAR-10 training step after the benchmark's warm-up."""
    mode = resolve_mode("fast", device)
    config, size = configs.cifar10(scale), configs.sizes(scale)
    trainer = build_trainer(config, mode, device, batch_size=size.train_batch, data_items=size.data_items)
    try:
        for _ in range(configs.warmup_calls(device.type, compiled=mode.compile)):
            trainer.train_step()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        events, seconds = profiled(trainer.train_step, device, TRAIN_RANGE)
    finally:
        trainer.restore_backend_flags()
    result = analyse(events, range_name=TRAIN_RANGE, steps=1, top=top)
    result.update(
        workload=f"train_step/{config.name}",
        batch=size.train_batch,
        profiled_wall_s=seconds,
        peak_memory_gib=peak_memory_gib(device),
        mode_settings=mode.describe(),
    )
    return result


def profile_sample_loop(device: torch.device, scale: str, top: int) -> dict[str, Any]:
    """One fast-mode 50-step respaced sampling run of the CIFAR-10 model after warm-up loops."""
    mode = resolve_mode("fast", device)
    config, size = configs.cifar10(scale), configs.sizes(scale)
    model, diffusion = build_model_and_diffusion(
        config, mode, device, timestep_respacing=str(size.sample_steps)
    )
    net, runner = sampling_network(model, mode, device)
    shape = (size.sample_batch, config.channels, config.image_size, config.image_size)
    generator = torch.Generator(device=device).manual_seed(0)

    def sample() -> None:
        diffusion.p_sample_loop(net, shape, device=device, generator=generator, step_runner=runner)

    with backend_flags_scope(device, allow_tf32=mode.tf32, cudnn_benchmark=mode.cudnn_benchmark):
        for _ in range(2 if runner is not None else 1):  # compile, then capture and replay the graphs
            sample()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        events, seconds = profiled(sample, device, SAMPLE_RANGE)
    result = analyse(events, range_name=SAMPLE_RANGE, steps=diffusion.num_timesteps, top=top)
    result.update(
        workload=f"sample_loop_{size.sample_steps}_steps/{config.name}",
        batch=size.sample_batch,
        profiled_wall_s=seconds,
        peak_memory_gib=peak_memory_gib(device),
        mode_settings=mode.describe(),
        step_runner=None if runner is None else type(runner).__name__,
    )
    return result


WORKLOADS: tuple[tuple[str, Callable[[torch.device, str, int], dict[str, Any]]], ...] = (
    ("train_step", profile_train_step),
    ("sample_loop", profile_sample_loop),
)


def format_report(report: dict[str, Any]) -> str:
    """The text report: per workload, the key counts and the ranked table."""
    lines = [
        f"device: {report['device']}, scale: {report['scale']}, torch {report['torch']}",
        "(times under the profiler: for where the time goes, not for throughput)",
    ]
    for name, message in report.get("errors", {}).items():
        lines.append(f"{name}: FAILED: {message}")
    for name, w in report["workloads"].items():
        syncs = ", ".join(f"{k} {v}" for k, v in w["host_sync_calls"].items()) or "none"
        lines += [
            "",
            f"== {name} ({w['workload']}, batch {w['batch']}, {w['steps']} step(s)) ==",
            f"profiled wall time {w['profiled_wall_s']:.3f} s; host range {w['host_range_us'] / 1e3:.3f} ms; "
            f"device kernel time {w['device_kernel_time_us'] / 1e3:.3f} ms; peak memory "
            + ("n/a" if w["peak_memory_gib"] is None else f"{w['peak_memory_gib']:.2f} GiB"),
            f"kernels executed per step {w['kernels_executed_per_step']:.1f} "
            f"({w['kernels_executed']} in all); "
            f"kernel launch calls per step {w['kernel_launch_calls_per_step']:.1f}; "
            f"CUDA-graph launches per step {w['graph_launch_calls_per_step']:.1f}",
            f"host syncs in the range: {w['host_sync_calls_total']} ({syncs}); "
            f"device-to-host copies {w['device_to_host_copies']}; host-to-device copies "
            f"{w['host_to_device_copies']}",
            f"top {len(w['top'])} by {w['ranked_by']}:",
            f"{'total ms':>10} {'share':>6} {'calls':>7} {'mean us':>10}  name",
        ]
        for row in w["top"]:
            lines.append(
                f"{row['total_us'] / 1e3:>10.3f} {100 * row['share']:>5.1f}% {row['calls']:>7} "
                f"{row['mean_us']:>10.1f}  {row['name'][:160]}"
            )
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Profile one fast training step and one sampling run")
    parser.add_argument("--out", type=Path, required=True, help="folder for profile.txt and profile.json")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:i (default: IDDPM_BENCH_DEVICE)")
    parser.add_argument("--scale", choices=SCALE_NAMES, default=None, help="paper or tiny")
    parser.add_argument("--top", type=int, default=20, help="rows of the kernel table (>= 1)")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top must be >= 1, got {args.top}")
    if not args.out.is_dir():
        parser.error(f"--out must be an existing folder, got {str(args.out)!r}")
    device = torch.device(args.device) if args.device else select_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch sees no CUDA device")
    scale = args.scale or select_scale(device)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "scale": scale,
        "torch": torch.__version__,
        "workloads": {},
        "errors": {},
    }
    for name, run in WORKLOADS:
        # one workload's failure (a compile error, a graph capture the profiler refuses) is recorded and
        # the other still runs; the files are rewritten after each, so a later timeout keeps the first
        try:
            report["workloads"][name] = run(device, scale, args.top)
        except Exception as error:
            report["errors"][name] = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        write_atomic(args.out / "profile.json", json.dumps(report, indent=2) + "\n")
        write_atomic(args.out / "profile.txt", format_report(report))
    print(format_report(report), end="")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
