"""nll_bound: batching, labels, aggregation by hand (fake diffusion), JSON output, and the real diffusion."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from impl.data import ImageDataset, load_data
from impl.evaluate import nll_bound, summarize_bpd_terms, write_json_atomic
from impl.factory import create_gaussian_diffusion
from testing.assertions import assert_close
from testing.tolerances import Evaluate, tolerance

SUMMARY = tolerance(Evaluate.SUMMARY_MEAN_STDERR)
PIXELS = [0, 51, 102, 153, 204]  # x = p / 127.5 - 1 = -1, -0.6, -0.2, 0.2, 0.6


class FakeDiffusion:
    """Per image with constant value x: prior = x + 2, vb[:, t] = (t + 1)(x + 2), xstart_mse[:, t] = t / 10,
    mse[:, t] = y (the label passed in model_kwargs, 0 without one); columns in calc_bpd_loop's order
    (timestep T - 1 first)."""

    num_timesteps = 3

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def calc_bpd_loop(
        self,
        model: Callable[..., torch.Tensor],
        x_start: torch.Tensor,
        clip_denoised: bool = True,
        model_kwargs: dict[str, Any] | None = None,
        *,
        generator: torch.Generator | None = None,
        timestep_batch: int = 1,
    ) -> Mapping[str, torch.Tensor]:
        kwargs = dict(model_kwargs or {})
        call = {"batch": x_start.shape[0], "kwargs": kwargs, "clip": clip_denoised, "gen": generator}
        self.calls.append(call)
        pixel = torch.round((x_start[:, 0, 0, 0].double() + 1.0) * 127.5)  # the exact integer p
        base = pixel / 127.5 + 1.0  # x + 2 in float64 (x itself is float32)
        steps = torch.arange(1, 4, dtype=torch.float64)
        vb = base[:, None] * steps[None, :]
        y = (model_kwargs or {}).get("y", torch.zeros(x_start.shape[0], dtype=torch.long)).double()
        return {
            "total_bpd": vb.sum(dim=1) + base,
            "prior_bpd": base,
            "vb": vb.flip(1),
            "xstart_mse": ((steps[None, :] - 1).repeat(x_start.shape[0], 1) / 10).flip(1),
            "mse": y[:, None].repeat(1, 3),
        }


def _dataset(labels: list[int] | None = None) -> ImageDataset:
    images = np.stack([np.full((4, 4, 1), p, dtype=np.uint8) for p in PIXELS])
    return ImageDataset(images, None if labels is None else np.array(labels, dtype=np.int64))


def _never_called(*args: Any, **kwargs: Any) -> torch.Tensor:
    raise AssertionError("the fake diffusion does not call the model")


def test_aggregation_by_hand() -> None:
    fake = FakeDiffusion()
    result = nll_bound(_never_called, fake, _dataset(), batch_size=2, num_samples=5)
    assert [c["batch"] for c in fake.calls] == [2, 2, 1]
    # prior = x + 2 = 1.0, 1.4, 1.8, 2.2, 2.6: mean 1.8, sample variance (2·0.64 + 2·0.16)/4 = 0.4,
    # standard error sqrt(0.4 / 5) = sqrt(0.08); total = prior·(1 + 1 + 2 + 3) = 7·prior.
    expected = {
        "n": 5,
        "num_timesteps": 3,
        "prior_bpd": 1.8,
        "prior_bpd_stderr": math.sqrt(0.08),
        "decoder_bpd": 1.8,
        "decoder_bpd_stderr": math.sqrt(0.08),
        "total_bpd": 12.6,
        "total_bpd_stderr": 7 * math.sqrt(0.08),
    }
    for key, value in expected.items():
        assert_close(result[key], value, tol=SUMMARY, label=key)
    assert_close(result["vb_terms_bpd"], [1.8, 3.6, 5.4], tol=SUMMARY)
    assert_close(result["xstart_mse"], [0.0, 0.1, 0.2], tol=SUMMARY)
    assert result["eps_mse"] == [0.0, 0.0, 0.0]
    assert result["config"]["num_samples"] == 5 and result["config"]["class_cond"] is False
    json.dumps(result, allow_nan=False)  # JSON-able


def test_first_num_samples_only_and_clip_flag_passed() -> None:
    fake = FakeDiffusion()
    result = nll_bound(_never_called, fake, _dataset(), batch_size=8, num_samples=3, clip_denoised=False)
    assert [c["batch"] for c in fake.calls] == [3]
    assert fake.calls[0]["clip"] is False
    # mean of 1, 1.4, 1.8
    assert_close(result["prior_bpd"], 1.4, tol=SUMMARY)


def test_labels_go_to_the_model_only_when_class_cond() -> None:
    ds = _dataset([3, 1, 4, 1, 5])
    fake = FakeDiffusion()
    result = nll_bound(_never_called, fake, ds, batch_size=5, num_samples=5, class_cond=True)
    assert fake.calls[0]["kwargs"]["y"].tolist() == [3, 1, 4, 1, 5]
    assert_close(result["eps_mse"], [2.8] * 3, tol=SUMMARY)
    fake = FakeDiffusion()
    nll_bound(_never_called, fake, ds, batch_size=5, num_samples=5)
    assert "y" not in fake.calls[0]["kwargs"]


def test_generator_is_passed_through() -> None:
    fake = FakeDiffusion()
    gen = torch.Generator().manual_seed(5)
    result = nll_bound(_never_called, fake, _dataset(), batch_size=5, num_samples=5, generator=gen)
    assert fake.calls[0]["gen"] is gen and result["config"]["generator_seed"] == 5


def test_single_image_has_no_standard_error() -> None:
    result = nll_bound(_never_called, FakeDiffusion(), _dataset(), batch_size=1, num_samples=1)
    assert result["n"] == 1 and result["total_bpd_stderr"] is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0, "num_samples": 2}, "batch_size"),
        ({"batch_size": 2, "num_samples": 6}, "num_samples"),
        ({"batch_size": 2, "num_samples": 0}, "num_samples"),
        ({"batch_size": 2, "num_samples": 2, "class_cond": True}, "class_cond"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        nll_bound(_never_called, FakeDiffusion(), _dataset(), **kwargs)


def test_summarize_rejects_inconsistent_shapes() -> None:
    good = {
        "total_bpd": np.ones(2),
        "prior_bpd": np.ones(2),
        "vb": np.ones((2, 3)),
        "xstart_mse": np.ones((2, 3)),
        "mse": np.ones((2, 3)),
    }
    assert summarize_bpd_terms(good)["n"] == 2
    with pytest.raises(ValueError, match="mse"):
        summarize_bpd_terms({**good, "mse": np.ones((2, 2))})
    with pytest.raises(ValueError, match="missing"):
        summarize_bpd_terms({k: v for k, v in good.items() if k != "vb"})
    with pytest.raises(ValueError, match="non-finite"):
        summarize_bpd_terms({**good, "vb": np.full((2, 3), np.nan)})


def test_write_json_atomic(tmp_path: Path) -> None:
    path = tmp_path / "nll.json"
    write_json_atomic(path, {"a": [1, 2.5, None]})
    assert json.loads(path.read_text()) == {"a": [1, 2.5, None]}
    with pytest.raises(ValueError, match="JSON"):
        write_json_atomic(path, {"a": float("nan")})
    assert json.loads(path.read_text()) == {"a": [1, 2.5, None]}
    assert [p.name for p in tmp_path.iterdir()] == ["nll.json"]


def _real_diffusion(steps: int) -> Any:
    return create_gaussian_diffusion(steps=steps, noise_schedule="cosine")


def test_with_the_real_diffusion_matches_a_direct_call() -> None:
    diffusion = _real_diffusion(4)
    ds = load_data("digits:held_out")
    seen: list[torch.Tensor] = []

    def zero_eps(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        assert y is not None
        seen.append(y)
        return torch.zeros_like(x)

    gen = torch.Generator().manual_seed(0)
    result = nll_bound(zero_eps, diffusion, ds, batch_size=3, num_samples=6, generator=gen, class_cond=True)
    assert result["n"] == 6 and len(result["vb_terms_bpd"]) == 4
    assert ds.labels is not None and len(seen) == 2 * 4  # 2 batches x T = 4 model calls
    for call, y in enumerate(seen):
        start = 3 * (call // 4)
        assert y.tolist() == ds.labels[start : start + 3].tolist()
    bound_sum = tolerance(Evaluate.FLOAT32_BOUND_SUM)
    assert_close(result["total_bpd"], result["prior_bpd"] + sum(result["vb_terms_bpd"]), tol=bound_sum)
    # The same noise stream, consumed in the same order, gives the same per-image totals.
    gen = torch.Generator().manual_seed(0)
    direct = []
    for start in (0, 3):
        pixels = ds.images[start : start + 3].transpose(0, 3, 1, 2).astype(np.float32)
        x = torch.from_numpy(pixels) / 127.5 - 1
        y = torch.from_numpy(ds.labels[start : start + 3].copy())
        out = diffusion.calc_bpd_loop(zero_eps, x, clip_denoised=True, model_kwargs={"y": y}, generator=gen)
        direct.append(out["total_bpd"].double().numpy())
    assert result["total_bpd"] == float(np.concatenate(direct).mean())


def test_timestep_batch_leaves_the_seeded_bound_unchanged() -> None:
    """Evaluating 3 timesteps per network call is a speed option: with the same seed every reported
    number equals the one-timestep-per-call run.  The model is elementwise (per sample), so the stacked
    batch computes the very same float32 operations: equality is exact."""
    diffusion = _real_diffusion(4)
    ds = load_data("digits:held_out")

    def shrink(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * x

    results = [
        nll_bound(
            shrink,
            diffusion,
            ds,
            batch_size=4,
            num_samples=8,
            generator=torch.Generator().manual_seed(3),
            timestep_batch=k,
        )
        for k in (1, 3)
    ]
    for key in ("total_bpd", "prior_bpd", "decoder_bpd", "vb_terms_bpd", "xstart_mse", "eps_mse"):
        assert results[0][key] == results[1][key], key
