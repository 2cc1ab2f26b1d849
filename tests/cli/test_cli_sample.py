"""``iddpm sample`` from run checkpoints (EMA/raw, DDIM, respacing) and from an original-style ``.pt``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from impl.cli import main
from tests.cli.tiny import TINY_MODEL, tiny_train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "run"
    argv = tiny_train(str(out), "--max_steps", "2", "--class_cond", "True", "--num_grid_samples", "0")
    assert main(argv) == 0
    return out


def _load(path: Path) -> tuple[np.ndarray, np.ndarray | None]:  # type: ignore[type-arg]
    with np.load(path) as f:
        labels = f["arr_1"] if "arr_1" in f.files else None
        return f["arr_0"], labels


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--use_ddim", "True", "--timestep_respacing", "ddim5", "--eta", "0.5"],
        ["--timestep_respacing", "3,2", "--use_ema", "False", "--clip_denoised", "False"],
    ],
)
def test_sample_writes_npz_and_grid(
    run_dir: Path, tmp_path: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.npz"
    argv = [
        "sample",
        "--checkpoint",
        str(run_dir),
        "--num_samples",
        "5",
        "--batch_size",
        "3",
        "--output",
        str(out),
        "--progress",
        "False",
        *extra,
    ]
    assert main(argv) == 0
    images, labels = _load(out)
    assert images.shape == (5, 8, 8, 1) and images.dtype == np.uint8
    assert labels is not None and labels.shape == (5,) and labels.max() < 10
    assert (tmp_path / "s.png").is_file()
    assert json.loads(capsys.readouterr().out)["samples"] == str(out)


def test_same_seed_same_samples_and_class_label(run_dir: Path, tmp_path: Path) -> None:
    base = [
        "sample",
        "--checkpoint",
        str(run_dir),
        "--num_samples",
        "4",
        "--progress",
        "False",
        "--class_label",
        "7",
        "--timestep_respacing",
        "5",
    ]
    assert main([*base, "--output", str(tmp_path / "a.npz")]) == 0
    assert main([*base, "--output", str(tmp_path / "b.npz")]) == 0
    a, la = _load(tmp_path / "a.npz")
    b, _ = _load(tmp_path / "b.npz")
    assert np.array_equal(a, b)
    assert la is not None and set(la.tolist()) == {7}


def test_sample_from_an_original_style_pt_state_dict(run_dir: Path, tmp_path: Path) -> None:
    step_dir = run_dir / "checkpoints" / "step_0000002"
    pt = tmp_path / "model.pt"
    torch.save(load_file(str(step_dir / "ema_0.9999.safetensors")), pt)
    flags = json.loads((run_dir / "config.json").read_text())["model_flags"]
    model_flags = [
        "--image_size",
        "8",
        "--in_channels",
        "1",
        "--channel_mult",
        "1,2",
        "--learn_sigma",
        "True",
        "--noise_schedule",
        "cosine",
        "--class_cond",
        "True",
        "--num_classes",
        str(flags["num_classes"]),
    ]
    tiny = [
        f
        for f in TINY_MODEL
        if f
        not in ("--batch_size", "8", "--log_interval", "2", "--num_grid_samples", "4", "--ema_rate", "0.9999")
    ]
    out = tmp_path / "pt.npz"
    argv = [
        "sample",
        "--checkpoint",
        str(pt),
        *model_flags,
        *tiny,
        "--num_samples",
        "2",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    images, labels = _load(out)
    assert images.shape == (2, 8, 8, 1) and labels is not None
    # the same weights from the run directory give the same images
    ref = tmp_path / "ref.npz"
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(run_dir),
                "--num_samples",
                "2",
                "--output",
                str(ref),
                "--progress",
                "False",
            ]
        )
        == 0
    )
    assert np.array_equal(_load(ref)[0], images)


def test_existing_outputs_are_kept_without_overwrite(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run onto the same --output / --grid stops with one line before sampling and leaves both
    files as they were; with --overwrite it replaces them."""
    out, grid = tmp_path / "s.npz", tmp_path / "s.png"
    argv = ["sample", "--checkpoint", str(run_dir), "--num_samples", "2", "--output", str(out)]
    argv += ["--progress", "False", "--timestep_respacing", "3"]
    assert main(argv) == 0
    capsys.readouterr()
    before = out.read_bytes(), grid.read_bytes()
    assert main([*argv, "--seed", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--output" in err and "--overwrite" in err
    assert (out.read_bytes(), grid.read_bytes()) == before
    out.rename(tmp_path / "moved.npz")  # the grid alone exists: refused naming --grid
    assert main([*argv, "--seed", "1"]) == 2
    assert "--grid" in capsys.readouterr().err
    assert main([*argv, "--seed", "1", "--overwrite", "True"]) == 0
    first, _ = _load(tmp_path / "moved.npz")
    second, _ = _load(out)
    assert not np.array_equal(first, second)  # seed 1's samples replaced seed 0's
