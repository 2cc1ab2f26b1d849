"""The editing loops (`impl.sampling.editing`): s = 0 is the identity, s = 1 runs every step from the last,
the kept region is exact after uint8 quantisation, resampling follows the jump schedule, seeds reproduce,
and bad settings are refused by name."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

from impl.diffusion.editing import check_jump_length, jump_schedule, largest_jump_length, start_level
from impl.diffusion.types import SamplingOptions
from impl.factory import create_gaussian_diffusion
from impl.sampling.editing import edit_sample_loop, edit_sample_loop_progressive, edit_schedule

SHAPE = (3, 2, 8, 8)


class ToyModel:
    """ε̂ = 0.3·x + 0.1 (a smooth stand-in network), recording the timesteps it was called at."""

    def __init__(self) -> None:
        self.timesteps: list[list[float]] = []
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.timesteps.append(t.tolist())
        self.inputs.append(x.clone())
        return 0.3 * x + 0.1


def _diffusion(respacing: str = "10") -> Any:
    return create_gaussian_diffusion(steps=100, noise_schedule="cosine", timestep_respacing=respacing)


def _pixels(seed: int = 0) -> torch.Tensor:
    """uint8-grid images in [−1, 1], NCHW."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, SHAPE, generator=generator).float() / 127.5 - 1.0


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _options(seed: int, **kwargs: Any) -> SamplingOptions:
    return SamplingOptions(generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.mark.parametrize("use_ddim", [False, True])
def test_strength_zero_runs_no_step_and_returns_the_input(use_ddim: bool) -> None:
    x0 = _pixels()
    model = ToyModel()
    steps = list(edit_sample_loop_progressive(_diffusion(), model, x0, strength=0.0, use_ddim=use_ddim))
    out = edit_sample_loop(_diffusion(), model, x0, strength=0.0, use_ddim=use_ddim, options=_options(1))
    assert steps == [] and model.timesteps == []
    assert torch.equal(out, x0) and torch.equal(_to_uint8(out), _to_uint8(x0))


@pytest.mark.parametrize("use_ddim", [False, True])
def test_strength_one_starts_at_the_last_step_from_q_sample(use_ddim: bool) -> None:
    """s = 1 on the 10-step respaced chain: 10 steps at code indices 9 … 0, the first input q_sample(x_0,
    9, ε) with the given ε (the process's own q_sample at the last code index)."""
    diffusion = _diffusion()
    x0, eps = _pixels(), torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    model = ToyModel()
    steps = list(
        edit_sample_loop_progressive(diffusion, model, x0, strength=1.0, noise=eps, use_ddim=use_ddim)
    )
    assert len(steps) == diffusion.num_timesteps == 10
    # the network sees the original chain's timesteps (respaced: the kept ones), in reverse order
    kept = sorted(diffusion.timestep_map)
    assert [row[0] for row in model.timesteps] == [float(kept[i]) for i in range(9, -1, -1)]
    start = diffusion.q_sample(x0, torch.full((SHAPE[0],), 9), eps)
    assert torch.equal(model.inputs[0], start)


def test_strength_sets_the_number_of_steps() -> None:
    """ℓ₀ = ⌊s·T + ½⌋ on T = 10: s = 0.45 → 5 steps (4.5 rounds up), at code indices 4 … 0."""
    diffusion = _diffusion()
    model = ToyModel()
    edit_sample_loop(diffusion, model, _pixels(), strength=0.45, options=_options(0))
    kept = sorted(diffusion.timestep_map)
    assert [row[0] for row in model.timesteps] == [float(kept[i]) for i in (4, 3, 2, 1, 0)]


@pytest.mark.parametrize("use_ddim", [False, True])
@pytest.mark.parametrize("resample_jumps", [1, 3])
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_kept_region_equals_the_known_image_bit_for_bit(
    use_ddim: bool, resample_jumps: int, strength: float
) -> None:
    """After uint8 quantisation the kept pixels are the input's exactly (float32), the others generated."""
    x0 = _pixels()
    keep = torch.zeros((SHAPE[0], 1, 8, 8), dtype=torch.bool)
    keep[:, :, :, :4] = True
    keep[1, :, 6:, :] = True
    out = edit_sample_loop(
        _diffusion(),
        ToyModel(),
        x0,
        strength=strength,
        keep=keep,
        jump_length=2,
        resample_jumps=resample_jumps,
        use_ddim=use_ddim,
        options=_options(3),
    )
    region = keep.expand(SHAPE)
    assert out.dtype == torch.float32
    assert torch.equal(out[region], x0[region])
    assert torch.equal(_to_uint8(out)[region], _to_uint8(x0)[region])
    assert not torch.equal(_to_uint8(out)[~region], _to_uint8(x0)[~region])


def test_every_yielded_sample_is_replaced_in_the_kept_region() -> None:
    """The per-step dicts carry the replaced sample (what the chain goes on from): at the last step the
    kept region is x_0 itself, before it a q_sample of x_0 (never the model's own output there)."""
    x0 = _pixels()
    keep = torch.ones((1, 1, 8, 8), dtype=torch.bool)
    keep[..., 4:] = False
    steps = list(edit_sample_loop_progressive(_diffusion(), ToyModel(), x0, keep=keep, options=_options(0)))
    assert set(steps[-1]) >= {"sample", "pred_xstart"}
    region = keep.expand(SHAPE)
    assert torch.equal(steps[-1]["sample"][region], x0[region])
    assert not torch.equal(steps[-2]["sample"][region], x0[region])


def test_resampling_follows_the_jump_schedule() -> None:
    """With r = 3, j = 2 on T = 10 the network is called at the descents of jump_schedule(10, 2, 3)."""
    diffusion = _diffusion()
    model = ToyModel()
    keep = torch.ones((1, 1, 8, 8), dtype=torch.bool)
    steps = list(
        edit_sample_loop_progressive(
            diffusion, model, _pixels(), keep=keep, jump_length=2, resample_jumps=3, options=_options(0)
        )
    )
    levels = jump_schedule(10, 2, 3)
    descents = [b for a, b in itertools.pairwise(levels) if b < a]
    kept = sorted(diffusion.timestep_map)
    assert len(steps) == len(descents) == 10 + 2 * 2 * 4
    assert [row[0] for row in model.timesteps] == [float(kept[i]) for i in descents]


@pytest.mark.parametrize("use_ddim", [False, True])
def test_seeded_runs_reproduce_and_other_seeds_differ(use_ddim: bool) -> None:
    keep = torch.zeros((1, 1, 8, 8), dtype=torch.bool)
    keep[..., :3] = True

    def run(seed: int) -> torch.Tensor:
        return edit_sample_loop(
            _diffusion(),
            ToyModel(),
            _pixels(),
            strength=0.8,
            keep=keep,
            jump_length=2,
            resample_jumps=2,
            use_ddim=use_ddim,
            options=_options(seed),
        )

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


def test_ddim_img2img_from_a_given_start_noise_is_deterministic() -> None:
    """η = 0 and no mask: the start ε fixes the result; the generators draw nothing."""
    eps = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    first, second = (
        edit_sample_loop(
            _diffusion(), ToyModel(), _pixels(), strength=0.7, noise=eps, use_ddim=True, options=_options(s)
        )
        for s in (1, 2)
    )
    assert torch.equal(first, second)


def test_guidance_and_labels_come_from_the_options() -> None:
    """cond_fn and model_kwargs of the SamplingOptions reach every step (composition with guidance)."""
    seen: list[dict[str, Any]] = []

    def cond_fn(x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        seen.append(kwargs)
        return torch.zeros_like(x)

    y = torch.tensor([0, 1, 2])
    model = ToyModel()
    options = SamplingOptions(
        cond_fn=cond_fn, model_kwargs={"y": y}, generator=torch.Generator().manual_seed(0)
    )
    edit_sample_loop(_diffusion(), model, _pixels(), strength=0.5, options=options)
    assert len(seen) == 5 and all(torch.equal(kw["y"], y) for kw in seen)


@pytest.mark.parametrize(
    ("kwargs", "options", "match"),
    [
        ({"strength": 1.5}, {}, "strength"),
        ({"strength": float("nan")}, {}, "strength"),
        ({"resample_jumps": 2}, {}, "resample_jumps"),
        ({"keep": torch.full((1, 1, 8, 8), 0.5)}, {}, "keep"),
        ({"keep": torch.ones((1, 1, 7, 8))}, {}, "keep"),
        ({}, {"init_temperature": 0.5}, "init_temperature"),
        ({}, {"eta": 0.5}, "eta"),
        ({"jump_length": 0, "keep": torch.ones((1, 1, 8, 8)), "resample_jumps": 2}, {}, "jump_length"),
        # no jump level on the 10-step chain (j >= ℓ₀): refused, not run as plain inpainting
        ({"keep": torch.ones((1, 1, 8, 8)), "resample_jumps": 2}, {}, "jump_length 10 leaves no jump level"),
        (
            {"keep": torch.ones((1, 1, 8, 8)), "resample_jumps": 2, "jump_length": 3, "strength": 0.3},
            {},
            "is 2",
        ),
    ],
)
def test_bad_settings_are_refused_by_name(
    kwargs: dict[str, Any], options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        edit_sample_loop(_diffusion(), ToyModel(), _pixels(), options=SamplingOptions(**options), **kwargs)


@pytest.mark.parametrize("use_ddim", [False, True])
def test_a_step_runner_reproduces_the_eager_edit(use_ddim: bool) -> None:
    """Through a step runner (compiled with the eager backend) the edit draws the same noise: same result."""
    from impl.sampling.compiled import CompiledStepRunner

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # ToyModel without the recording
        return 0.3 * x + 0.1

    keep = torch.zeros((1, 1, 8, 8), dtype=torch.bool)
    keep[..., :5] = True
    settings: dict[str, Any] = {"strength": 0.8, "keep": keep, "jump_length": 2, "resample_jumps": 2}
    eager = edit_sample_loop(
        _diffusion(), model, _pixels(), use_ddim=use_ddim, options=_options(4), **settings
    )
    runner = CompiledStepRunner(backend="eager")
    run = edit_sample_loop(
        _diffusion(),
        model,
        _pixels(),
        use_ddim=use_ddim,
        options=_options(4),
        step_runner=runner,
        **settings,
    )
    assert torch.equal(eager, run)


@pytest.mark.parametrize(
    ("strength", "steps", "level"),
    [(0.29, 50, 15), (0.57, 50, 29), (0.35, 10, 4), (0.45, 10, 5), (0.5, 5, 3), (0.04, 10, 0), (1.0, 7, 7)],
)
def test_start_level_rounds_the_written_decimal_half_up(strength: float, steps: int, level: int) -> None:
    """0.29·50 = 14.5 exactly → 15 (binary floating point: 14.499999999999998 → 14)."""
    assert start_level(strength, steps) == level
    assert edit_schedule(steps, strength=strength)[0] == level


@pytest.mark.parametrize("steps", [2, 50, 250, 1000])
def test_start_level_of_every_three_digit_decimal(steps: int) -> None:
    """Every s = k/1000: ⌊(2kT + 1000) / 2000⌋ in integers."""
    got = [start_level(k / 1000, steps) for k in range(1001)]
    assert got == [(2 * k * steps + 1000) // 2000 for k in range(1001)]


def test_the_largest_jump_length_is_the_last_that_resamples() -> None:
    """j = ℓ₀ − 1 has the jump level 1 (the schedule is longer than the plain chain); j = ℓ₀ is refused."""
    for levels in (2, 5, 20):
        j = largest_jump_length(levels)
        assert len(jump_schedule(levels, j, 2)) > levels + 1
        assert jump_schedule(levels, j + 1, 2) == tuple(range(levels, -1, -1))
        check_jump_length(levels, j, 2)
        check_jump_length(levels, j + 1, 1)  # r = 1: nothing to resample, nothing to refuse
        with pytest.raises(ValueError, match=f"largest that works is {j}"):
            check_jump_length(levels, j + 1, 2)
    assert largest_jump_length(1) == largest_jump_length(0) == 0
    with pytest.raises(ValueError, match="no jump length works"):
        check_jump_length(1, 1, 2)
