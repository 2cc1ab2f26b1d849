"""Training from a 1.2 GB ``.npy`` keeps the process's peak resident memory under 1 GB (it is streamed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli.tiny import TINY_MODEL

REPO = Path(__file__).resolve().parents[2]
FILE_BYTES = 1_200_000_000  # > MEMORY_LIMIT_BYTES (1 GiB), so --data_loader auto must stream it
PEAK_RSS_LIMIT_BYTES = 1_000_000_000

CHILD = """
import resource, sys
from impl.cli import main
code = main(sys.argv[1:])
print("PEAK_RSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


@pytest.mark.slow
def test_training_from_a_large_npy_keeps_peak_rss_under_1gb(tmp_path: Path) -> None:
    n = FILE_BYTES // (32 * 32 * 3)
    path = tmp_path / "big.npy"
    # open_memmap writes the header and sets the size: a sparse file, written in milliseconds
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 32, 32, 3))
    images[:: n // 8] = 200  # a few non-zero rows
    del images
    assert path.stat().st_size >= FILE_BYTES
    argv = [
        "train",
        "--data",
        str(path),
        "--out_dir",
        str(tmp_path / "run"),
        *TINY_MODEL,
        "--image_size",
        "32",
        "--channel_mult",
        "1,1",
        "--max_steps",
        "6",
        "--num_grid_samples",
        "0",
        "--save_interval",
        "0",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak_kib = int(done.stdout.split("PEAK_RSS_KIB")[-1].strip())
    print(f"peak RSS {peak_kib / 1024:.0f} MiB")
    assert peak_kib * 1024 < PEAK_RSS_LIMIT_BYTES, f"peak RSS {peak_kib / 1024:.0f} MiB"
