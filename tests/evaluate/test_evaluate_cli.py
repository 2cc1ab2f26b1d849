"""``iddpm evaluate --reference`` and ``iddpm stats`` end to end, through the real ``--inception_weights``
path with random weights of the same architecture (no download; a few images, CPU)."""

from __future__ import annotations

import importlib.util
import json
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from impl.cli import main
from impl.data.writers import save_npz_atomic
from testing.tolerances import Evaluate, tolerance

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch_fidelity") is None, reason="the metrics extra is not installed"
)

KEYS = {
    "fid",
    "sfid",
    "inception_score",
    "inception_score_std",
    "precision",
    "recall",
    "kid",
    "kid_std",
    "num_samples",
    "num_reference",
    "feature_extractor",
}


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("batches")
    rng = np.random.default_rng(0)
    samples, reference = folder / "samples.npz", folder / "reference.npz"
    save_npz_atomic(samples, rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8))
    save_npz_atomic(reference, rng.integers(0, 128, (10, 16, 16, 3), dtype=np.uint8))
    return samples, reference


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_evaluate_all_metrics_then_reuse_the_cache_then_a_stats_file(
    batches: tuple[Path, Path], inception_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples, reference = batches
    common = ["--inception_weights", str(inception_weights), "--progress", "False", "--device", "cpu"]
    report_path = tmp_path / "report.json"
    code, out, err = _run(
        ["evaluate", str(samples), "--reference", str(reference), "--output", str(report_path), *common],
        capsys,
    )
    assert code == 0, err
    assert "reference statistics computed" in err and "warning: FID/sFID from 10 images" in err
    report: dict[str, Any] = json.loads(report_path.read_text())
    assert report.keys() >= KEYS
    assert all(report[k] is not None for k in KEYS)
    assert report["num_samples"] == report["num_reference"] == 10
    # IS = exp(mean KL) >= 1; with random weights the KLs are ~0 and exp rounds to within an ulp of 1
    is_floor = 1.0 - tolerance(Evaluate.METRIC_HAND_VALUES).atol
    assert report["fid"] > 0 and report["sfid"] > 0 and report["inception_score"] >= is_floor
    assert 0.0 <= report["precision"] <= 1.0 and 0.0 <= report["recall"] <= 1.0
    assert (
        f"fid  {report['fid']:.6g}".split()
        == next(line for line in out.splitlines() if line.startswith("fid ")).split()
    )
    cached = list(reference.parent.glob("reference.npz.stats-*.npz"))
    assert len(cached) == 1

    code, out, err = _run(
        ["evaluate", str(samples), "--reference", str(reference), "--metrics", "fid", *common], capsys
    )
    assert code == 0 and "reference statistics cache" in err
    assert float(out.split("\n")[0].split()[1]) == pytest.approx(report["fid"], rel=1e-5)

    stats = tmp_path / "ref_stats.npz"
    assert _run(["stats", str(reference), "--out", str(stats), *common], capsys)[0] == 0
    code, _, err = _run(["stats", str(reference), "--out", str(stats), *common], capsys)
    assert code == 2 and "--overwrite" in err
    second = tmp_path / "again.json"
    argv = [
        "evaluate",
        str(samples),
        "--reference",
        str(stats),
        "--metrics",
        "fid,prc",
        "--output",
        str(second),
    ]
    code, _, err = _run([*argv, *common], capsys)
    assert code == 0 and "reference statistics file" in err
    again = json.loads(second.read_text())
    # the same float32 features: the stats file and the cache hold identical numbers
    assert again["fid"] == report["fid"]
    assert (again["precision"], again["recall"]) == (report["precision"], report["recall"])
    assert again["sfid"] is None and again["kid"] is None


@pytest.mark.slow
def test_identical_batches_score_as_identical(
    batches: tuple[Path, Path], inception_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples, _ = batches
    output = tmp_path / "self.json"
    argv = [
        "evaluate",
        str(samples),
        "--reference",
        str(samples),
        "--metrics",
        "fid,prc",
        "--output",
        str(output),
    ]
    code, _, err = _run([*argv, "--inception_weights", str(inception_weights), "--progress", "False"], capsys)
    assert code == 0, err
    report = json.loads(output.read_text())
    # FID of a batch with itself: the float32 features are bit-identical, so only the Fréchet rounding
    # (d·eps·tr Σ, see tests/evaluate/test_feature_metrics.py) remains
    assert report["fid"] < 1e-6
    assert (report["precision"], report["recall"]) == (1.0, 1.0)


@pytest.mark.slow
def test_stats_from_another_extractor_are_refused(
    batches: tuple[Path, Path], inception_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from impl.evaluate import random_inception_state_dict

    samples, reference = batches
    other = tmp_path / "other.pt"
    torch.save(random_inception_state_dict(seed=1), other)
    stats = tmp_path / "stats.npz"
    assert (
        _run(
            [
                "stats",
                str(reference),
                "--out",
                str(stats),
                "--inception_weights",
                str(other),
                "--progress",
                "False",
            ],
            capsys,
        )[0]
        == 0
    )
    argv = ["evaluate", str(samples), "--reference", str(stats), "--metrics", "fid"]
    code, _, err = _run([*argv, "--inception_weights", str(inception_weights)], capsys)
    assert code == 2 and "were computed with" in err and len(err.strip().splitlines()) == 1


def test_digits_metrics_refuse_other_images(
    batches: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    samples, _ = batches
    code, _, err = _run(["evaluate", str(samples), "--metrics", "digits"], capsys)
    assert code == 2 and "8x8 greyscale" in err and len(err.strip().splitlines()) == 1


def test_reference_needed_and_unknown_metric(
    batches: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    samples, _ = batches
    code, _, err = _run(["evaluate", str(samples), "--metrics", "fid"], capsys)
    assert code == 2 and "needs --reference" in err
    code, _, err = _run(["evaluate", str(samples), "--metrics", "fid,bogus"], capsys)
    assert code == 2 and "unknown bogus" in err


def test_offline_without_weights_exits_2_naming_both_options(
    batches: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def offline(*args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    samples, reference = batches
    code, _, err = _run(["evaluate", str(samples), "--reference", str(reference)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "--inception_weights" in err and "IDDPM_INCEPTION_WEIGHTS" in err
