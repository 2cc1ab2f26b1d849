"""Trajectories: which steps a recorder keeps, that it keeps the uint8 pixels of the step's own tensors,
that watching a loop does not change it (eager and compiled), the strip layout and files, the staged
folder put in place as a whole, and the number of steps a loop (plain or an edit) runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from impl.commands.trajectory import (
    TrajectoryWriter,
    loop_step_count,
    strip_shape,
    trajectory_folder,
    trajectory_strip,
)
from impl.data.writers import enlarge_nearest
from impl.factory import create_gaussian_diffusion
from impl.sampling.compiled import CompiledStepRunner
from impl.sampling.loops import final_sample
from impl.sampling.trajectory import TrajectoryRecorder, observed, recorded_steps, to_uint8_nhwc

N, C, H, W = 3, 1, 4, 5


def _levels(step: int, which: int) -> np.ndarray:  # type: ignore[type-arg]
    """Distinct uint8 levels (N, H, W, C) per step and tensor, so a mix-up between steps shows."""
    base = np.arange(N * H * W * C, dtype=np.int64).reshape(N, H, W, C)
    return ((base * 7 + step * 31 + which * 101) % 256).astype(np.uint8)


def _tensor(levels: np.ndarray) -> torch.Tensor:  # type: ignore[type-arg]
    """Model-range NCHW x with round((x + 1) * 127.5) == levels (x = levels / 127.5 - 1)."""
    return torch.from_numpy(levels.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)


def _fake_steps(num_steps: int) -> list[dict[str, torch.Tensor]]:
    return [
        {"sample": _tensor(_levels(i, 0)), "pred_xstart": _tensor(_levels(i, 1)), "mean": torch.zeros(1)}
        for i in range(num_steps)
    ]


@pytest.mark.parametrize(
    ("num_steps", "every", "expected"),
    [(10, 3, [0, 3, 6, 9]), (10, 4, [0, 4, 8, 9]), (5, 1, [0, 1, 2, 3, 4]), (1, 5, [0]), (3, 7, [0, 2])],
)
def test_recorded_steps_are_every_kth_with_first_and_last(
    num_steps: int, every: int, expected: list[int]
) -> None:
    assert recorded_steps(num_steps, every) == expected
    recorder = TrajectoryRecorder(every)
    for i, out in enumerate(_fake_steps(num_steps)):
        recorder.observe(i, out)
    assert recorder.steps_seen == num_steps
    trajectory = recorder.finish()
    assert list(trajectory.steps) == expected


def test_recorder_keeps_the_uint8_pixels_of_each_recorded_step() -> None:
    recorder = TrajectoryRecorder(4)
    for i, out in enumerate(_fake_steps(10)):
        recorder.observe(i, out)
    trajectory = recorder.finish()
    assert trajectory.steps == (0, 4, 8, 9)
    for s, step in enumerate(trajectory.steps):
        for kept, which in ((trajectory.samples[s], 0), (trajectory.pred_xstart[s], 1)):
            assert isinstance(kept, np.ndarray) and kept.dtype == np.uint8 and kept.shape == (N, H, W, C)
            assert np.array_equal(kept, _levels(step, which))
    samples, pred = trajectory.of_sample(2)
    assert samples.shape == (4, H, W, C)
    assert np.array_equal(samples[3], _levels(9, 0)[2]) and np.array_equal(pred[1], _levels(4, 1)[2])


def test_to_uint8_clamps_to_the_model_range() -> None:
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 1.7]).reshape(1, 1, 1, 5)
    assert to_uint8_nhwc(x).reshape(-1).tolist() == [0, 0, 128, 255, 255]  # round(127.5) = 128 (half to even)


def test_recorder_refuses_steps_out_of_order_and_an_empty_loop() -> None:
    recorder = TrajectoryRecorder(2)
    steps = _fake_steps(3)
    recorder.observe(0, steps[0])
    with pytest.raises(ValueError, match="step_index must be 1"):
        recorder.observe(2, steps[2])
    with pytest.raises(ValueError, match=r"lacks \['pred_xstart'\]"):
        recorder.observe(1, {"sample": steps[1]["sample"]})
    with pytest.raises(ValueError, match="no steps"):
        TrajectoryRecorder(1).finish()
    assert TrajectoryRecorder(1).steps_seen == 0
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="every must be a positive integer"):
            TrajectoryRecorder(bad)  # type: ignore[arg-type]


def test_observed_yields_the_dicts_unchanged_in_order() -> None:
    seen: list[tuple[int, Any]] = []

    class Spy:
        def observe(self, step_index: int, out: Any) -> None:
            seen.append((step_index, out))

    steps = _fake_steps(4)
    assert list(observed(iter(steps), Spy())) == steps
    assert [i for i, _ in seen] == [0, 1, 2, 3] and all(a is b for (_, a), b in zip(seen, steps, strict=True))
    assert list(observed(iter(steps), None)) == steps


def test_strip_layout() -> None:
    s = 3
    tops = np.stack([np.full((H, W, C), 10 + i, np.uint8) for i in range(s)])
    bottoms = np.stack([np.full((H, W, C), 50 + i, np.uint8) for i in range(s)])
    strip = trajectory_strip(tops, bottoms)
    assert strip.shape == (2 + 2 * (H + 2), 2 + s * (W + 2), C) == (*strip_shape(s, H, W), C)
    for i in range(s):
        left = 2 + i * (W + 2)
        assert (strip[2 : 2 + H, left : left + W] == 10 + i).all()  # x_t row on top, left to right
        assert (strip[4 + H : 4 + 2 * H, left : left + W] == 50 + i).all()  # x̂₀ row below
    assert strip[0].max() == 0 and strip[:, 0].max() == 0 and strip[2 + H : 4 + H].max() == 0  # padding
    with pytest.raises(ValueError, match="pred_xstart"):
        trajectory_strip(tops, bottoms[:2])


def _record_batches(writer: TrajectoryWriter, num_steps: int, batches: int = 2) -> None:
    """Feed ``batches`` batches of N samples, each a loop of ``num_steps`` fake steps."""
    for b in range(batches):
        writer.begin_batch(b * N, N)
        for i, out in enumerate(_fake_steps(num_steps)):
            writer.observe(i, out)
        writer.end_batch()


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writer_writes_one_enlarged_strip_per_sample(tmp_path: Path) -> None:
    folder = trajectory_folder(tmp_path / "samples_6x4x4x1.npz")
    assert folder == tmp_path / "samples_6x4x4x1_trajectory"
    writer = TrajectoryWriter(folder, every=2, scale=0)
    _record_batches(writer, 5)
    names = [f"sample_{i:05d}.png" for i in range(2 * N)]
    assert [p.name for p in writer.written] == names
    assert writer.staging is not None and writer.staging.name.startswith(".")  # hidden until finish()
    assert not folder.exists() and _entries(writer.staging) == names
    assert writer.finish(np.zeros((2 * N, H, W, C), np.uint8)) == folder
    assert _entries(tmp_path) == [folder.name] and _entries(folder) == names  # staging renamed into place
    height, width = strip_shape(3, H, W)  # steps 0, 2, 4
    factor = 16  # auto: ceil(64 / min(4, 5)) = 16; 16 * 20 px = 320 px <= 4096
    with Image.open(folder / "sample_00004.png") as png:
        assert png.size == (width * factor, height * factor)
        decoded = np.asarray(png)[:, :, None]
    tops = np.stack([_levels(step, 0)[1] for step in (0, 2, 4)])  # sample 4 = sample 1 of batch 2
    bottoms = np.stack([_levels(step, 1)[1] for step in (0, 2, 4)])
    assert np.array_equal(decoded, enlarge_nearest(trajectory_strip(tops, bottoms), factor))


def test_a_loop_without_steps_gets_one_column_strips_of_its_images(tmp_path: Path) -> None:
    """An edit at ℓ₀ = 0 yields no step; its result is its init image: x_t = x̂₀ = that image."""
    folder = tmp_path / "s_trajectory"
    writer = TrajectoryWriter(folder, every=3, scale=1)
    _record_batches(writer, 0)
    assert writer.staging is None  # nothing written yet: the images come with finish()
    images = _levels(7, 2)
    images = np.concatenate([images, images[::-1]])  # 2 N samples, as the .npz holds them
    writer.finish(images)
    assert _entries(folder) == [f"sample_{i:05d}.png" for i in range(2 * N)]
    for i in range(2 * N):
        with Image.open(folder / f"sample_{i:05d}.png") as png:
            decoded = np.asarray(png)[:, :, None]
        assert decoded.shape == (*strip_shape(1, H, W), C)
        assert np.array_equal(decoded[2 : 2 + H, 2 : 2 + W], images[i])  # top: the image
        assert np.array_equal(decoded[4 + H : 4 + 2 * H, 2 : 2 + W], images[i])  # bottom: the image
    with pytest.raises(ValueError, match="ran no step"):
        short = TrajectoryWriter(tmp_path / "t_trajectory", every=1)
        _record_batches(short, 0)
        short.finish(images[:N])  # the second batch's images are missing
    assert _entries(tmp_path) == [folder.name]  # the failed writer left no staging folder


def test_overwrite_replaces_the_whole_folder_only_when_the_new_one_is_complete(tmp_path: Path) -> None:
    folder = tmp_path / "s_trajectory"
    folder.mkdir()
    for name in ("sample_00000.png", "sample_00009.png", "notes.txt"):
        (folder / name).write_bytes(b"old")
    refused = TrajectoryWriter(folder, every=2)
    _record_batches(refused, 3, batches=1)
    with pytest.raises(ValueError, match="already exists"):
        refused.finish(np.zeros((N, H, W, C), np.uint8))
    assert _entries(tmp_path) == [folder.name] and (folder / "sample_00009.png").read_bytes() == b"old"
    writer = TrajectoryWriter(folder, every=2, overwrite=True)
    _record_batches(writer, 3, batches=1)
    assert (folder / "sample_00000.png").read_bytes() == b"old"  # untouched until finish()
    writer.finish(np.zeros((N, H, W, C), np.uint8))
    assert _entries(tmp_path) == [folder.name]  # the old folder moved aside and removed
    assert _entries(folder) == [f"sample_{i:05d}.png" for i in range(N)]  # nothing of the larger old run
    discarded = TrajectoryWriter(folder, every=2, overwrite=True)
    _record_batches(discarded, 3, batches=1)
    discarded.discard()  # a run that failed after some batches
    assert _entries(tmp_path) == [folder.name] and _entries(folder) == [
        f"sample_{i:05d}.png" for i in range(N)
    ]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 5),  # from noise: every step of the chain
        ({"strength": 0.0}, 0),  # ℓ₀ = 0: the init images, no step
        ({"strength": 0.05}, 0),  # ℓ₀ = ⌊0.25 + ½⌋ = 0
        ({"strength": 0.5}, 3),  # ℓ₀ = ⌊2.5 + ½⌋ = 3
        ({"strength": 1.0}, 5),
        ({"strength": 1.0, "jump_length": 2, "resample_jumps": 3}, 13),  # 5 + 2 jump levels · 2 · (3 − 1)
    ],
)
def test_loop_step_count_counts_the_reverse_steps(kwargs: dict[str, Any], expected: int) -> None:
    assert loop_step_count(5, **kwargs) == expected


def test_loop_step_count_refuses_resampling_without_a_jump_level() -> None:
    """j ≥ ℓ₀ leaves no jump level: the edit schedule refuses it rather than count a plain chain [S57]."""
    with pytest.raises(ValueError, match="jump_length 10 leaves no jump level"):
        loop_step_count(5, strength=1.0, jump_length=10, resample_jumps=3)


def test_loop_step_count_of_repaints_paper_setting() -> None:
    """T = 250, j = 10, r = 10: jump levels 1 + a·j with a·j < T − j (1, 11, …, 231: 24 of them), each redone
    r − 1 = 9 times over j = 10 levels: 250 + 24 · 9 · 10 = 2410 network calls."""
    assert loop_step_count(250, strength=1.0, jump_length=10, resample_jumps=10) == 2410


def _tiny_model(x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    return 0.3 * torch.tanh(x) + 0.01 * t.float().reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("kind", ["ancestral", "ddim"])
@pytest.mark.parametrize("compiled", [False, True])
def test_a_watched_loop_gives_the_unwatched_samples(kind: str, compiled: bool) -> None:
    """The recorder only reads the step dicts: the final sample is the unwatched loop's bit for bit, and the
    last recorded top tile is its uint8 image; the compiled (eager-backend) runner records the same pixels."""
    diffusion = create_gaussian_diffusion(steps=12, noise_schedule="cosine", timestep_respacing="6")
    loop = (
        diffusion.p_sample_loop_progressive if kind == "ancestral" else diffusion.ddim_sample_loop_progressive
    )
    extra: dict[str, Any] = {} if kind == "ancestral" else {"eta": 0.5}

    def run(recorder: TrajectoryRecorder | None, runner: CompiledStepRunner | None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(5)
        steps = loop(_tiny_model, (N, C, H, W), generator=gen, step_runner=runner, **extra)
        return final_sample(observed(steps, recorder))

    plain = run(None, None)
    recorder = TrajectoryRecorder(4)
    watched = run(recorder, CompiledStepRunner(backend="eager") if compiled else None)
    assert torch.equal(watched, plain)
    trajectory = recorder.finish()
    assert trajectory.steps == (0, 4, 5)
    assert np.array_equal(trajectory.samples[-1], to_uint8_nhwc(plain))
    if compiled:
        eager = TrajectoryRecorder(4)
        run(eager, None)
        reference = eager.finish()
        for a, b in zip(
            trajectory.samples + trajectory.pred_xstart,
            reference.samples + reference.pred_xstart,
            strict=True,
        ):
            assert np.array_equal(a, b)
