"""The sampling side's contract with the process: the loop methods hand every setting over as one
`SamplingOptions`, the loops call the step with exactly those settings, and no import circle remains."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest
import torch

from impl.diffusion.types import DenoisedFn, Model, ReverseProcess, SamplingOptions
from impl.sampling import loops
from impl.sampling.methods import SamplingLoopMethods

SHAPE = (2, 1, 3, 3)
STEPS = 4


class RecordingProcess:
    """A `ReverseProcess` whose steps return x unchanged and record the settings they were called with."""

    num_timesteps = STEPS

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def prepare_device_caches(self, x: torch.Tensor) -> None:
        pass

    def _record(
        self, kind: str, t: torch.Tensor, x: torch.Tensor, **settings: Any
    ) -> dict[str, torch.Tensor]:
        self.calls.append({"kind": kind, "t": t.tolist(), **settings})
        return {"sample": x, "pred_xstart": x}

    def p_sample(
        self,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = True,
        denoised_fn: DenoisedFn | None = None,
        cond_fn: Model | None = None,
        model_kwargs: dict[str, Any] | None = None,
        noise: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        return self._record(
            "ancestral",
            t,
            x,
            clip_denoised=clip_denoised,
            denoised_fn=denoised_fn,
            cond_fn=cond_fn,
            model_kwargs=model_kwargs,
            noise=noise,
            generator=generator,
        )

    def ddim_sample(
        self,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = True,
        denoised_fn: DenoisedFn | None = None,
        cond_fn: Model | None = None,
        model_kwargs: dict[str, Any] | None = None,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        return self._record(
            "ddim",
            t,
            x,
            clip_denoised=clip_denoised,
            denoised_fn=denoised_fn,
            cond_fn=cond_fn,
            model_kwargs=model_kwargs,
            eta=eta,
            noise=noise,
            generator=generator,
        )


def _network(x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    return x


def _denoise(x: torch.Tensor) -> torch.Tensor:
    return x


def _guide(x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    return torch.zeros_like(x)


def test_options_are_frozen_and_default_to_the_original_keyword_defaults() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(SamplingOptions)}
    # improved-diffusion's loop defaults: clip_denoised=True, no denoised_fn/cond_fn/model_kwargs,
    # eta=0.0, progress=False (and no generator: the global RNG).
    assert defaults == {
        "clip_denoised": True,
        "denoised_fn": None,
        "cond_fn": None,
        "model_kwargs": None,
        "eta": 0.0,
        "progress": False,
        "generator": None,
        # temperatures [S45], [S46]: 1.0 is the untempered sampler.
        "temperature": 1.0,
        "init_temperature": 1.0,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        SamplingOptions().eta = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("kind", ["ancestral", "ddim"])
def test_loop_methods_pass_every_setting_to_every_step(kind: str) -> None:
    process = RecordingProcess()
    generator = torch.Generator().manual_seed(0)
    kwargs = {"y": torch.tensor([1, 0])}
    settings: dict[str, Any] = {
        "clip_denoised": False,
        "denoised_fn": _denoise,
        "cond_fn": _guide,
        "model_kwargs": kwargs,
        "generator": generator,
    }
    extra: dict[str, Any] = {"eta": 0.25} if kind == "ddim" else {}
    if kind == "ddim":
        SamplingLoopMethods.ddim_sample_loop(process, _network, SHAPE, **settings, **extra)
    else:
        SamplingLoopMethods.p_sample_loop(process, _network, SHAPE, **settings)
    assert [call["t"] for call in process.calls] == [[step, step] for step in range(STEPS - 1, -1, -1)]
    for call in process.calls:
        assert call["kind"] == kind
        assert call["noise"] is None  # the eager step draws its own noise from the generator
        for name, value in {**settings, **extra}.items():
            assert call[name] is value or call[name] == value, name


class RecordingRunner:
    """A `StepRunner` that records the options and noise of each step and returns x unchanged."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, SamplingOptions, torch.Tensor]] = []

    def ancestral_step(
        self,
        diffusion: ReverseProcess,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        options: SamplingOptions,
    ) -> dict[str, torch.Tensor]:
        self.seen.append(("ancestral", options, noise))
        return {"sample": x, "pred_xstart": x}

    def ddim_step(
        self,
        diffusion: ReverseProcess,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        options: SamplingOptions,
    ) -> dict[str, torch.Tensor]:
        self.seen.append(("ddim", options, noise))
        return {"sample": x, "pred_xstart": x}


def test_a_step_runner_gets_the_options_object_and_the_noise_drawn_outside() -> None:
    runner = RecordingRunner()
    options = SamplingOptions(clip_denoised=False, eta=0.0, generator=torch.Generator().manual_seed(1))
    loops.ddim_sample_loop(RecordingProcess(), _network, SHAPE, options=options, step_runner=runner)
    assert [kind for kind, _, _ in runner.seen] == ["ddim"] * STEPS
    assert all(seen is options for _, seen, _ in runner.seen)
    # η = 0: the eager step adds no noise and draws none, so the runner is handed zeros.
    assert all(torch.count_nonzero(noise) == 0 for _, _, noise in runner.seen)


def test_ancestral_loops_reject_a_ddim_eta() -> None:
    steps = loops.p_sample_loop_progressive(
        RecordingProcess(), _network, SHAPE, options=SamplingOptions(eta=0.5)
    )
    with pytest.raises(ValueError, match=r"options\.eta must be 0\.0"):
        next(steps)


@pytest.mark.parametrize("first", ["impl.sampling", "impl.sampling.loops", "impl.diffusion.types", "impl.nn"])
def test_each_layer_imports_first_in_a_fresh_interpreter(first: str) -> None:
    """No import circle: whichever module a program imports first, the package graph loads."""
    code = f"import {first}; import impl; print(impl.GaussianDiffusion.p_sample_loop.__qualname__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SamplingLoopMethods.p_sample_loop"
