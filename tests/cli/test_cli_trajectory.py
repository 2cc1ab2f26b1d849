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


def _init_images(folder: Path, n: int) -> tuple[Path, U8]:
    """``n`` random 8 x 8 greyscale init images in ``folder/init.npz`` (outside the output folder)."""
    folder.mkdir(exist_ok=True)
    images: U8 = np.random.default_rng(n).integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8)
    np.savez(folder / "init.npz", arr_0=images)
    return folder / "init.npz", images


def _keep_left_half(folder: Path) -> Path:
    keep = np.zeros((8, 8), np.uint8)
    keep[:, :4] = 1
    np.savez(folder / "mask.npz", arr_0=keep)
    return folder / "mask.npz"


def edit_argv(checkpoint: str, out: Path, *extra: str) -> list[str]:
    """``sample_argv`` without ``--num_samples``: an edit's count defaults to its number of init images."""
    argv = sample_argv(checkpoint, out, *extra)
    at = argv.index("--num_samples")
    return argv[:at] + argv[at + 2 :]


@pytest.mark.parametrize("strength", ["0", "0.05"])  # ℓ₀ = ⌊s·5 + ½⌋ = 0: no step runs
def test_an_edit_without_steps_writes_one_column_strips_of_its_images(
    checkpoint: str, tmp_path: Path, strength: str
) -> None:
    init, images = _init_images(tmp_path / "in", 3)
    out = tmp_path / "out" / "s.npz"
    out.parent.mkdir()
    argv = edit_argv(checkpoint, out, "--init_images", str(init), "--strength", strength)
    assert main([*argv, "--save_trajectory", "2"]) == 0
    with np.load(out) as f:
        assert np.array_equal(f["arr_0"], images)  # s·T < ½ returns the input
    folder = out.parent / "s_trajectory"
    assert sorted(p.name for p in folder.iterdir()) == [f"sample_{i:05d}.png" for i in range(3)]
    for i in range(3):
        strip = read_png(folder / f"sample_{i:05d}.png")
        assert strip.shape == (strip_shape(1, 8, 8)[0] * FACTOR, strip_shape(1, 8, 8)[1] * FACTOR, 1)
        assert np.array_equal(tile(strip, 0, 0, FACTOR), images[i])  # x_t: the image
        assert np.array_equal(tile(strip, 1, 0, FACTOR), images[i])  # x̂₀: the image


# RePaint on the 5-step chain with j = 2, r = 3: jump levels 1 and 3 (1 + a·j with a·j < 5 − 2), each
# redone twice over 2 levels: 5 + 2 · 2 · 2 = 13 descents, so 13 step dicts and 13 columns at k = 1.
REPAINT = ("--resample_jumps", "3", "--jump_length", "2")
REPAINT_STEPS = 13


def test_a_resampled_edit_records_every_descent(checkpoint: str, tmp_path: Path) -> None:
    init, images = _init_images(tmp_path / "in", 3)
    out = tmp_path / "s.npz"
    mask = _keep_left_half(tmp_path / "in")
    argv = edit_argv(checkpoint, out, "--init_images", str(init), "--mask", str(mask), *REPAINT)
    assert main([*argv, "--save_trajectory", "1"]) == 0
    with np.load(out) as f:
        samples: U8 = f["arr_0"]
    assert np.array_equal(samples[:, :, :4], images[:, :, :4])
    height, width = strip_shape(REPAINT_STEPS, 8, 8)
    for i in range(3):
        strip = read_png(tmp_path / "s_trajectory" / f"sample_{i:05d}.png")
        assert strip.shape == (height * FACTOR, width * FACTOR, 1)
        assert np.array_equal(tile(strip, 0, REPAINT_STEPS - 1, FACTOR), samples[i])


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        # 100 init images (the default --num_samples of an edit): a 10 x 10 grid of 102 px, 18360 px at
        # 180x; the parser's default --num_samples 64 would be an 82 px grid, 14760 px, and pass.
        ("grid_of_the_init_images", "--grid_scale 180 would make a picture 18360 px"),
        # 13 columns (2 + 13 · 10 = 132 px) at 200x: 26400 px; 5 columns (52 px) would pass at 10400.
        ("strip_of_a_resampled_edit", "--grid_scale 200 would make a picture 26400 px"),
    ],
)
def test_pictures_are_checked_with_the_real_counts_before_sampling(
    checkpoint: str, tmp_path: Path, case: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "s.npz"
    out.parent.mkdir()
    if case == "grid_of_the_init_images":
        init, _ = _init_images(tmp_path / "in", 100)
        extra = ["--init_images", str(init), "--strength", "0", "--grid_scale", "180"]
    else:
        init, _ = _init_images(tmp_path / "in", 3)
        mask = _keep_left_half(tmp_path / "in")
        extra = ["--init_images", str(init), "--mask", str(mask), *REPAINT]
        extra += ["--save_trajectory", "1", "--grid_scale", "200"]
    code = main(edit_argv(checkpoint, out, *extra))
    _one_line_error(code, capsys.readouterr().err, needle)
    assert list(out.parent.iterdir()) == []  # refused before sampling: no .npz, no grid, no folder


def _fail_at_the_second_strip(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trajectory writer's PNG writes: the first succeeds, the second finds the disk full."""
    import errno

    import impl.commands.trajectory as trajectory

    real = trajectory.save_png
    calls = []

    def save_png(path: Path, picture: U8) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, picture)

    monkeypatch.setattr(trajectory, "save_png", save_png)


@pytest.mark.parametrize("earlier_run", [False, True])
def test_a_failed_run_leaves_no_partial_trajectory_folder(
    checkpoint: str,
    tmp_path: Path,
    earlier_run: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "s.npz"
    folder = tmp_path / "s_trajectory"
    if earlier_run:
        assert main(sample_argv(checkpoint, out, "--save_trajectory", "2", "--seed", "7")) == 0
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        entries = sorted(p.name for p in tmp_path.iterdir())
    _fail_at_the_second_strip(monkeypatch)
    capsys.readouterr()
    code = main(sample_argv(checkpoint, out, "--save_trajectory", "2", "--overwrite", "True"))
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and len(err.strip().splitlines()) == 1
    if earlier_run:  # the old folder is whole and no hidden staging folder is left
        assert sorted(p.name for p in tmp_path.iterdir()) == entries
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    else:
        assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_whole_trajectory_folder(checkpoint: str, tmp_path: Path) -> None:
    out, fresh = tmp_path / "s.npz", tmp_path / "fresh" / "s.npz"
    fresh.parent.mkdir()
    assert main([*sample_argv(checkpoint, out, "--save_trajectory", "2"), "--num_samples", "5"]) == 0
    assert len(list((tmp_path / "s_trajectory").iterdir())) == 5
    assert (
        main(sample_argv(checkpoint, out, "--save_trajectory", "2", "--overwrite", "True", "--seed", "3"))
        == 0
    )
    assert main(sample_argv(checkpoint, fresh, "--save_trajectory", "2", "--seed", "3")) == 0
    names = [f"sample_{i:05d}.png" for i in range(NUM)]
    assert sorted(p.name for p in (tmp_path / "s_trajectory").iterdir()) == names  # none of the 5 stay
    for name in names:
        assert (tmp_path / "s_trajectory" / name).read_bytes() == (
            fresh.parent / "s_trajectory" / name
        ).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "s.npz", "s.png", "s_trajectory"]


def test_the_grid_writer_names_the_flag_it_was_given(tmp_path: Path) -> None:
    from impl.data import save_image_grid

    with pytest.raises(ValueError, match=r"^--grid_scale 5000 would make a picture"):
        save_image_grid(tmp_path / "g.png", np.zeros((4, 8, 8, 1), np.uint8), scale=5000, name="--grid_scale")
    assert not (tmp_path / "g.png").exists()
