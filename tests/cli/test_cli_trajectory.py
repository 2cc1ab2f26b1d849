"""``iddpm sample --save_trajectory k`` and ``--grid_scale``: the strips on disk, the samples untouched, the
grids enlarged; bad values exit 2 with one line naming the flag.

The checkpoint is a bare state dict of a tiny U-Net whose zero-initialised layers are re-drawn, so that
ε̂ is O(1) and the trajectories are not trivially the plain noise-to-image blend.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from impl.cli import main
from impl.commands.trajectory import strip_shape
from impl.data.writers import grid_shape, image_grid
from impl.factory import build_model_and_diffusion, model_and_diffusion_defaults
from impl.sampling.trajectory import recorded_steps
from tests.cli.tiny import tiny_train

MODEL = {
    "image_size": 8,
    "in_channels": 1,
    "num_channels": 32,
    "num_res_blocks": 1,
    "attention_resolutions": "",
    "channel_mult": "1,2",
    "diffusion_steps": 20,
    "noise_schedule": "cosine",
}
MODEL_FLAGS = [token for name, value in MODEL.items() for token in (f"--{name}", str(value))]
U8 = np.ndarray[Any, np.dtype[np.uint8]]
STEPS, EVERY, NUM = 5, 2, 3  # respaced to 5 steps, record steps 0, 2, 4; 3 samples in batches of 2
FACTOR = 8  # the auto rule for 8 px tiles: ceil(64 / 8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model, _ = build_model_and_diffusion({**model_and_diffusion_defaults(), **MODEL})
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1 and not param.any():
                param.copy_(torch.randn(param.shape, generator=gen) / math.sqrt(param[0].numel()))
    path = tmp_path_factory.mktemp("trajectory") / "model.pt"
    torch.save(model.state_dict(), path)
    return str(path)


def sample_argv(checkpoint: str, out: Path, *extra: str) -> list[str]:
    return [
        "sample",
        "--checkpoint",
        checkpoint,
        *MODEL_FLAGS,
        "--timestep_respacing",
        str(STEPS),
        "--num_samples",
        str(NUM),
        "--batch_size",
        "2",
        "--progress",
        "False",
        "--output",
        str(out),
        *extra,
    ]


def npz_members(path: Path) -> dict[str, bytes]:
    """Every member of an .npz, byte for byte (the zip's own timestamps aside)."""
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def read_png(path: Path) -> U8:
    with Image.open(path) as png:
        assert png.format == "PNG" and png.mode == "L"
        pixels: U8 = np.asarray(png)[:, :, None]
    return pixels


def tile(strip: U8, row: int, column: int, factor: int) -> U8:
    """The unscaled 8 x 8 tile at (row, column) of a strip with 2 px padding enlarged ``factor`` times."""
    small = strip[::factor, ::factor]
    top, left = 2 + row * 10, 2 + column * 10
    return small[top : top + 8, left : left + 8]


@pytest.mark.parametrize("extra", [[], ["--use_ddim", "True", "--eta", "0.5"]])
def test_trajectory_strips_exist_and_leave_the_samples_unchanged(
    checkpoint: str, tmp_path: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    plain, watched = tmp_path / "plain" / "s.npz", tmp_path / "watched" / "s.npz"
    plain.parent.mkdir()
    watched.parent.mkdir()
    assert main(sample_argv(checkpoint, plain, *extra)) == 0
    assert not (plain.parent / "s_trajectory").exists()
    capsys.readouterr()
    assert main(sample_argv(checkpoint, watched, *extra, "--save_trajectory", str(EVERY))) == 0
    folder = watched.parent / "s_trajectory"
    assert json.loads(capsys.readouterr().out)["trajectory"] == str(folder)
    assert npz_members(watched) == npz_members(plain)
    with np.load(watched) as f:
        images: U8 = f["arr_0"]
    assert sorted(p.name for p in folder.iterdir()) == [f"sample_{i:05d}.png" for i in range(NUM)]
    columns = len(recorded_steps(STEPS, EVERY))
    assert columns == 3
    height, width = strip_shape(columns, 8, 8)
    for i in range(NUM):
        strip = read_png(folder / f"sample_{i:05d}.png")
        assert strip.shape == (height * FACTOR, width * FACTOR, 1)
        blocks = strip.reshape(height, FACTOR, width, FACTOR, 1)
        assert (blocks == blocks[:, :1, :, :1]).all()  # nearest neighbour: constant 8 x 8 blocks
        assert np.array_equal(tile(strip, 0, columns - 1, FACTOR), images[i])  # last step's x_0 = the sample
        assert not np.array_equal(tile(strip, 0, 0, FACTOR), images[i])  # the first step is still noise


@pytest.mark.slow
def test_compiled_steps_record_the_eager_trajectory(checkpoint: str, tmp_path: Path) -> None:
    """``--compile`` (eager backend: the eager kernels, traced) yields the same step dicts, so the strips
    and the samples are the eager run's."""
    for name, extra in (("eager", []), ("compiled", ["--compile", "True", "--compile_backend", "eager"])):
        (tmp_path / name).mkdir()
        out = tmp_path / name / "s.npz"
        argv = sample_argv(checkpoint, out, "--num_samples", "2", "--save_trajectory", "1", *extra)  # 1 batch
        assert main(argv) == 0
    assert npz_members(tmp_path / "compiled" / "s.npz") == npz_members(tmp_path / "eager" / "s.npz")
    for i in range(2):
        name = f"sample_{i:05d}.png"
        eager = read_png(tmp_path / "eager" / "s_trajectory" / name)
        assert eager.shape[1] == strip_shape(STEPS, 8, 8)[1] * FACTOR  # every step recorded
        assert np.array_equal(read_png(tmp_path / "compiled" / "s_trajectory" / name), eager)


@pytest.mark.parametrize(
    ("flags", "factor"), [([], FACTOR), (["--grid_scale", "1"], 1), (["--grid_scale", "3"], 3)]
)
def test_sample_grid_is_enlarged(checkpoint: str, tmp_path: Path, flags: list[str], factor: int) -> None:
    out = tmp_path / "s.npz"
    assert main(sample_argv(checkpoint, out, *flags)) == 0
    with np.load(out) as f:
        images: U8 = f["arr_0"]
    assert images.shape == (NUM, 8, 8, 1)  # the .npz is never enlarged
    grid = read_png(tmp_path / "s.png")
    assert grid.shape[:2] == tuple(side * factor for side in grid_shape(NUM, 8, 8))
    assert np.array_equal(grid[::factor, ::factor], image_grid(images))


def test_training_grids_are_enlarged(tmp_path: Path) -> None:
    argv = tiny_train(str(tmp_path / "run"), "--max_steps", "1", "--grid_respacing", "2")
    assert main(argv) == 0
    grid = read_png(tmp_path / "run" / "samples" / "step_0000001.png")
    assert grid.shape[:2] == (22 * FACTOR, 22 * FACTOR)  # 4 digits, 2 x 2: 2 + 2 * 10 = 22 px, 8x


def test_training_refuses_a_bad_grid_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad, needle in (
        ("-1", "grid_scale must be an integer >= 0"),
        ("auto", "grid_scale must be an integer >= 0"),
        ("1000", "grid_scale 1000 would make a picture 22000 px"),  # 4 digits: a 22 px grid
    ):
        code = main(tiny_train(str(tmp_path / "run"), "--max_steps", "1", "--grid_scale", bad))
        _one_line_error(code, capsys.readouterr().err, needle)
    assert not (tmp_path / "run" / "checkpoints").exists()


def _one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert any(needle in line for line in lines), err
    assert len(lines) == 1


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--save_trajectory", "0"], "--save_trajectory must be a positive integer"),
        (["--save_trajectory", "-3"], "--save_trajectory must be a positive integer"),
        (["--save_trajectory", "1.5"], "--save_trajectory must be a positive integer"),
        (["--save_trajectory", "every"], "--save_trajectory must be a positive integer"),
        (["--grid_scale", "-1"], "--grid_scale must be an integer >= 0"),
        (["--grid_scale", "auto"], "--grid_scale must be an integer >= 0"),
        (["--grid_scale", "5000"], "--grid_scale 5000 would make a picture"),
        (["--save_trajectory", "1", "--grid_scale", "700"], "--grid_scale 700 would make a picture"),
    ],
)
def test_bad_values_exit_2_naming_the_flag(
    checkpoint: str, tmp_path: Path, flags: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(sample_argv(checkpoint, tmp_path / "s.npz", *flags))
    _one_line_error(code, capsys.readouterr().err, needle)
    assert list(tmp_path.iterdir()) == []  # refused before sampling: nothing written


def test_an_existing_trajectory_folder_is_not_overwritten(
    checkpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "s_trajectory"
    folder.mkdir()
    (folder / "sample_00000.png").write_bytes(b"keep me")
    code = main(sample_argv(checkpoint, tmp_path / "s.npz", "--save_trajectory", "2"))
    _one_line_error(code, capsys.readouterr().err, "--save_trajectory: ")
    assert (folder / "sample_00000.png").read_bytes() == b"keep me"
    assert not (tmp_path / "s.npz").exists()
