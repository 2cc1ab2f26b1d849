"""Turn a saved pytest-benchmark JSON into the Markdown results table of docs/performance.md.

``python -m benchmarks.report benchmarks/baselines/<kind>/<machine-id>/0001_<name>.json``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _cell(value: Any, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def results_table(saved: dict[str, Any]) -> str:
    """One row per benchmark: workload, mode, median, images/s, speed-up, TFLOP/s, MFU, peak memory."""
    lines = [
        "| workload | mode | median s/call | img/s | × eager fp32 | TFLOP/s | MFU | peak GiB | target met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = sorted(saved["benchmarks"], key=lambda b: (b["group"] or "", b["extra_info"].get("mode", "")))
    for bench in rows:
        info = bench["extra_info"]
        median = bench["stats"]["median"]
        mfu = info.get("mfu")
        verdict = {None: "", True: "yes", False: "NO"}[info.get("target_met")]
        # the harness records images per timed call; the data-pipeline benchmark its own images/s
        if "images_per_call" in info:
            images_per_s: float | None = info["images_per_call"] / median
        else:
            images_per_s = info.get("images_per_s")
        mode = info.get("mode", info.get("reader", ""))
        lines.append(
            f"| {info.get('workload', bench['group'])} | {mode} | {median:.4g} | "
            f"{_cell(images_per_s, ',.1f')} | {_cell(info.get('speedup_vs_eager_fp32'), '.2f')} | "
            f"{_cell(info.get('achieved_tflops'), '.3g')} | {'' if mfu is None else f'{100 * mfu:.1f} %'} | "
            f"{_cell(info.get('peak_memory_gib'), '.2f')} | {verdict} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Markdown table of a saved pytest-benchmark run")
    parser.add_argument("saved_json", type=Path)
    args = parser.parse_args(argv)
    saved = json.loads(args.saved_json.read_text(encoding="utf-8"))
    machine = saved.get("machine_info", {})
    device, scale = machine.get("iddpm_device"), machine.get("iddpm_scale")
    print(f"device: {device}, scale: {scale}, torch {machine.get('torch')}")
    print(results_table(saved))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
