"""Benchmark: Inception feature extraction for the sample-quality metrics (32×32 uint8 → 299² inside).

One call is ``InceptionExtractor.extract`` of one batch: host→device copy, torch-fidelity's resize to 299,
the inception-v3-compat forward with the sFID hook, and the float64 features back on the host.  Paper scale
(CUDA): batch 500; tiny (CPU smoke): batch 2.  Random weights of the same architecture (no download; speed
does not depend on the values).  Both modes run the same network; the mode's TF32 / cuDNN-autotune
switches are what differ.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.harness import BenchmarkFixture, Mode, Workload, run_benchmark

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch_fidelity") is None, reason="the metrics extra is not installed"
)

PAPER_BATCH = 500
TINY_BATCH = 2
IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from impl.evaluate import random_inception_state_dict

    path = tmp_path_factory.mktemp("inception") / "random-inception.pt"
    torch.save(random_inception_state_dict(seed=0), path)
    return path


def test_inception_feature_extraction(
    benchmark: BenchmarkFixture, mode: Mode, device: torch.device, scale: str, weights: Path
) -> None:
    from impl.evaluate import InceptionExtractor

    batch = PAPER_BATCH if scale == "paper" else TINY_BATCH
    extractor = InceptionExtractor(weights, device=device, batch_size=batch, progress=False)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)

    def extract() -> None:
        extractor.extract(images)

    run_benchmark(
        benchmark,
        extract,
        workload=Workload(f"inception_features/{IMAGE_SIZE}px", scale, images_per_call=batch),
        mode=mode,
        device=device,
        flops_per_call=None,
        warmup_calls=1,
        extra={"batch_size": batch, "input_size": IMAGE_SIZE, "network_input": 299},
    )
