"""Evidence that the trainer learns: a 2-D Gaussian mixture with a known density.

Trains a small MLP with L_hybrid (learned Σ, cosine schedule, T = 100) and checks
1. samples pass an energy-distance permutation test against fresh data (level α = 0.01, so a correct model
   fails this test at most 1% of the time; seeds are fixed, so the outcome is deterministic), while samples of
   the best single Gaussian fail it (the test has power);
2. the full NLL bound [S20] in bits/dim of 8-bit-discretised data beats the best single Gaussian's
   discretised NLL on the same held-out points.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from impl.factory import create_gaussian_diffusion
from impl.train import InMemoryData, TrainConfig, Trainer
from tests.e2e.mixture import PointMLP, gaussian_fit_bits_per_dim, sample_gaussian_fit, sample_mixture
from tests.e2e.two_sample import energy_test

ALPHA = 0.01


@pytest.fixture(scope="module")
def trained() -> dict[str, object]:
    rng = np.random.default_rng(0)
    train = sample_mixture(4096, rng)
    torch.manual_seed(0)
    model = PointMLP()
    diffusion = create_gaussian_diffusion(
        steps=100,
        learn_sigma=True,
        noise_schedule="cosine",
        rescale_timesteps=True,
        rescale_learned_sigmas=True,
    )
    config = TrainConfig(
        batch_size=512,
        lr=3e-3,
        max_steps=2000,
        lr_anneal_steps=2000,
        ema_rate="0.99",
        log_interval=500,
        save_interval=0,
        num_grid_samples=0,
        progress=False,
    )
    data = InMemoryData(torch.tensor(train, dtype=torch.float32).view(-1, 2, 1, 1))
    trainer = Trainer(model=model, diffusion=diffusion, data=data, config=config)
    trainer.run()
    ema_model = PointMLP()
    ema_model.load_state_dict(trainer.ema.state_dict(trainer.model, 0.99))
    return {"model": ema_model.eval(), "diffusion": diffusion, "train": train, "rng": rng}


def test_samples_pass_a_two_sample_test(trained: dict[str, object]) -> None:
    model, diffusion, train = trained["model"], trained["diffusion"], trained["train"]
    rng = np.random.default_rng(1)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        x = diffusion.p_sample_loop(model, (400, 2, 1, 1), generator=gen)  # type: ignore[attr-defined]
    samples = x.view(-1, 2).double().numpy()
    fresh = sample_mixture(400, rng)
    result = energy_test(samples, fresh, seed=2)
    gaussian = energy_test(sample_gaussian_fit(train, 400, rng), fresh, seed=3)  # type: ignore[arg-type]
    _record("mixture_two_sample", {"model": result, "single_gaussian": gaussian})
    assert gaussian["p_value"] < ALPHA  # the test can tell a wrong distribution
    assert result["p_value"] >= ALPHA


def test_nll_bound_beats_the_best_single_gaussian(trained: dict[str, object]) -> None:
    model, diffusion, train = trained["model"], trained["diffusion"], trained["train"]
    test = sample_mixture(512, np.random.default_rng(4))
    x = torch.tensor(test, dtype=torch.float32).view(-1, 2, 1, 1)
    with torch.no_grad():
        out = diffusion.calc_bpd_loop(  # type: ignore[attr-defined]
            model, x, clip_denoised=True, generator=torch.Generator().manual_seed(5)
        )
    total = out["total_bpd"].double()
    bound = float(total.mean())
    stderr = float(total.std() / np.sqrt(total.numel()))
    baseline = gaussian_fit_bits_per_dim(train, test)  # type: ignore[arg-type]
    _record("mixture_nll", {"bound_bpd": bound, "stderr": stderr, "single_gaussian_bpd": baseline})
    assert bound + 3 * stderr < baseline


def _record(name: str, values: dict[str, object]) -> None:
    """Print the measured figures (for the README); written to $IDDPM_EVIDENCE_DIR when set."""
    print(name, json.dumps(values))
    folder = os.environ.get("IDDPM_EVIDENCE_DIR")
    if folder:
        with open(os.path.join(folder, f"{name}.json"), "w") as handle:
            json.dump(values, handle, indent=2)
