"""Evidence that ``iddpm train`` learns digits: a short CPU run through the CLI, then ``iddpm nll``,
``iddpm sample`` and ``iddpm evaluate``.

1. The NLL bound (bits/dim, held-out digits) of the trained EMA model falls far below the same bound of the
   run's own initial weights (rebuilt from the run's seed).
2. The samples' digits-classifier score is far above that of uniform-noise images of the same count: the
   gap to noise is at least a quarter of the gap between real held-out digits and noise (~8.8 vs ~2.8),
   and the Fréchet distance is under a quarter of the noise images'.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from impl.cli import main
from impl.data import load_data
from impl.evaluate import digits_sample_quality, nll_bound
from impl.factory import build_model_and_diffusion
from impl.runtime.seeding import STREAM_INIT, derive_seed
from tests.e2e.test_mixture_learning import _record

TRAIN = [
    "--num_channels",
    "32",
    "--num_res_blocks",
    "1",
    "--attention_resolutions",
    "",
    "--diffusion_steps",
    "100",
    "--batch_size",
    "32",
    "--lr",
    "3e-3",
    "--ema_rate",
    "0.99",
    "--max_steps",
    "400",
    "--log_interval",
    "100",
    "--num_grid_samples",
    "16",
    "--progress",
    "False",
]
NLL_IMAGES = 128


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits") / "run"
    assert main(["train", "--out_dir", str(out), *TRAIN]) == 0
    return out


@pytest.mark.slow
def test_nll_falls_far_below_its_value_at_initialisation(run_dir: Path, tmp_path: Path) -> None:
    flags = json.loads((run_dir / "config.json").read_text())["model_flags"]
    torch.manual_seed(derive_seed(0, STREAM_INIT))  # the run's initialisation (--seed 0)
    init_model, diffusion = build_model_and_diffusion(flags)
    dataset = load_data("digits:held_out")
    at_init = nll_bound(
        init_model.eval(),
        diffusion,
        dataset,
        batch_size=64,
        num_samples=NLL_IMAGES,
        device="cpu",
        generator=torch.Generator().manual_seed(0),
    )
    out = tmp_path / "nll.json"
    assert (
        main(
            [
                "nll",
                "--checkpoint",
                str(run_dir),
                "--data",
                "digits:held_out",
                "--num_samples",
                str(NLL_IMAGES),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    trained = json.loads(out.read_text())
    _record(
        "digits_nll",
        {
            "init_bpd": at_init["total_bpd"],
            "init_stderr": at_init["total_bpd_stderr"],
            "trained_bpd": trained["total_bpd"],
            "trained_stderr": trained["total_bpd_stderr"],
        },
    )
    gap = at_init["total_bpd"] - trained["total_bpd"]
    assert gap > 1.0  # bits/dim: "well below"
    assert gap > 5 * (at_init["total_bpd_stderr"] + trained["total_bpd_stderr"])


@pytest.mark.slow
def test_samples_score_far_above_noise(run_dir: Path, tmp_path: Path) -> None:
    npz = tmp_path / "samples.npz"
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(run_dir),
                "--num_samples",
                "100",
                "--output",
                str(npz),
                "--progress",
                "False",
            ]
        )
        == 0
    )
    with np.load(npz) as f:
        images = f["arr_0"]
    assert images.shape == (100, 8, 8, 1) and images.dtype == np.uint8
    assert (tmp_path / "samples.png").is_file()
    report = tmp_path / "quality.json"
    assert main(["evaluate", str(npz), "--output", str(report)]) == 0
    quality = json.loads(report.read_text())
    noise = digits_sample_quality(np.random.default_rng(0).integers(0, 256, (100, 8, 8, 1), dtype=np.uint8))
    real = digits_sample_quality(load_data("digits:held_out").images[:100])
    _record("digits_quality", {"trained": quality, "noise": noise, "real_held_out": real})
    real_gap = real["classifier_score"] - noise["classifier_score"]
    assert quality["classifier_score"] - noise["classifier_score"] > 0.25 * real_gap
    assert quality["frechet_distance"] < 0.25 * noise["frechet_distance"]
