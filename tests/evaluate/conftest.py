"""Shared fixtures of the Inception tests: the inception-v3-compat architecture with random weights.

No test downloads anything: the weights are random (``random_inception_state_dict``), saved to a temporary
file and loaded through the real ``--inception_weights`` path (``weights_only`` unpickling, strict load).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

HAS_METRICS_EXTRA = importlib.util.find_spec("torch_fidelity") is not None
NO_EXTRA_REASON = "the metrics extra is not installed: pip install '.[metrics]'"


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAS_METRICS_EXTRA:
        pytest.skip(NO_EXTRA_REASON)
    from impl.evaluate import random_inception_state_dict

    path = tmp_path_factory.mktemp("inception") / "random-inception.pt"
    torch.save(random_inception_state_dict(seed=0), path)
    return path


@pytest.fixture(scope="session")
def extractor(inception_weights: Path):  # type: ignore[no-untyped-def]
    from impl.evaluate import InceptionExtractor

    return InceptionExtractor(inception_weights, device="cpu", batch_size=8, progress=False)


@pytest.fixture(autouse=True)
def _no_weights_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests see neither the user's IDDPM_INCEPTION_WEIGHTS nor the user's cache."""
    monkeypatch.delenv("IDDPM_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("IDDPM_CACHE_DIR", str(tmp_path / "iddpm-cache"))
