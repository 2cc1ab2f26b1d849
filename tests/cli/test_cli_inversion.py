"""``iddpm encode`` / ``iddpm interpolate`` and ``iddpm sample --temperature --init_temperature`` through
`impl.cli.main` on the tiny digits model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from impl.cli import main
from impl.sampling.slerp import slerp
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance
from tests.cli.npz_files import unreadable_npz
from tests.cli.tiny import tiny_train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inversion") / "run"
    assert main(tiny_train(str(out), "--max_steps", "2", "--num_grid_samples", "0")) == 0
    return out


def _images(path: Path, n: int, size: int = 8, channels: int = 1, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, arr_0=rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8))
    return path


def _sample(run_dir: Path, out: Path, *extra: str) -> np.ndarray:  # type: ignore[type-arg]
    argv = ["sample", "--checkpoint", str(run_dir), "--num_samples", "3", "--output", str(out)]
    assert main([*argv, "--progress", "False", "--timestep_respacing", "5", *extra]) == 0
    with np.load(out) as f:
        return np.asarray(f["arr_0"])


def test_unit_temperatures_are_todays_sampling(run_dir: Path, tmp_path: Path) -> None:
    """--temperature 1 --init_temperature 1 writes the same bytes as no flags; other values change it."""
    plain = _sample(run_dir, tmp_path / "a.npz")
    unit = _sample(run_dir, tmp_path / "b.npz", "--temperature", "1", "--init_temperature", "1")
    assert np.array_equal(plain, unit)
    cold = _sample(run_dir, tmp_path / "c.npz", "--temperature", "0.5", "--init_temperature", "0.7")
    assert cold.shape == plain.shape and not np.array_equal(plain, cold)


@pytest.mark.parametrize("flag", ["--temperature", "--init_temperature"])
@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_bad_temperature_is_one_line_exit_2(
    run_dir: Path, tmp_path: Path, flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sample", "--checkpoint", str(run_dir), "--output", str(tmp_path / "s.npz"), flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and "Traceback" not in err


def test_encode_writes_latents_and_never_overwrites(run_dir: Path, tmp_path: Path) -> None:
    images = _images(tmp_path / "x.npz", 3)
    out = tmp_path / "z.npz"
    argv = ["encode", "--checkpoint", str(run_dir), "--images", str(images), "--output", str(out)]
    assert main([*argv, "--timestep_respacing", "ddim5", "--batch_size", "2"]) == 0
    with np.load(out) as f:
        latents = np.asarray(f["arr_0"])
    assert latents.shape == (3, 1, 8, 8) and latents.dtype == np.float32 and np.isfinite(latents).all()
    # never overwritten without --overwrite
    assert main([*argv, "--timestep_respacing", "ddim5"]) == 2
    assert main([*argv, "--timestep_respacing", "ddim5", "--overwrite", "True"]) == 0


def test_encode_rejects_images_of_the_wrong_size(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _images(tmp_path / "x.npz", 2, size=16)
    argv = [
        "encode",
        "--checkpoint",
        str(run_dir),
        "--images",
        str(images),
        "--output",
        str(tmp_path / "z.npz"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--images" in err and "8x8x1" in err
    assert not (tmp_path / "z.npz").exists()


def test_interpolate_writes_frames_from_a_to_b(run_dir: Path, tmp_path: Path) -> None:
    a, b = _images(tmp_path / "a.npz", 1, seed=1), _images(tmp_path / "b.npz", 1, seed=2)
    out = tmp_path / "frames.npz"
    argv = ["interpolate", str(a), str(b), "--checkpoint", str(run_dir), "--steps", "4"]
    assert main([*argv, "--output", str(out), "--timestep_respacing", "ddim5"]) == 0
    with np.load(out) as f:
        frames = np.asarray(f["arr_0"])
    assert frames.shape == (4, 8, 8, 1) and frames.dtype == np.uint8


@pytest.mark.parametrize("steps", ["1", "0"])
def test_interpolate_needs_two_steps(
    run_dir: Path, tmp_path: Path, steps: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _images(tmp_path / "a.npz", 1), _images(tmp_path / "b.npz", 1)
    argv = ["interpolate", str(a), str(b), "--checkpoint", str(run_dir), "--steps", steps]
    assert main([*argv, "--output", str(tmp_path / "f.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--steps" in err


def test_interpolate_rejects_a_file_of_two_images(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _images(tmp_path / "a.npz", 2), _images(tmp_path / "b.npz", 1)
    argv = ["interpolate", str(a), str(b), "--checkpoint", str(run_dir), "--output", str(tmp_path / "f.npz")]
    assert main(argv) == 2
    assert "one image" in capsys.readouterr().err


def test_slerp_endpoints_and_unit_circle() -> None:
    """α = 0, 1 give a, b; for orthogonal unit vectors the midpoint is (a + b)/√2 (on the circle)."""
    a, b = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    tol = tolerance(Oracle.REASSOCIATED_FORMULA)
    assert_close(slerp(a, b, 0.0), a, tol=tol, label="alpha 0")
    assert_close(slerp(a, b, 1.0), b, tol=tol, label="alpha 1")
    half = torch.tensor([2**-0.5, 2**-0.5], dtype=torch.float64)
    assert_close(slerp(a, b, 0.5), half, tol=tol, label="midpoint")
    # the arc keeps the norm: |slerp(u, v, α)| = 1 for unit u, v at any angle
    g = torch.Generator().manual_seed(0)
    u, v = (
        torch.randn(16, generator=g, dtype=torch.float64),
        torch.randn(16, generator=g, dtype=torch.float64),
    )
    u, v = u / u.norm(), v / v.norm()
    for alpha in (0.1, 0.37, 0.8):
        assert_close(slerp(u, v, alpha).norm(), torch.tensor(1.0, dtype=torch.float64), tol=tol, label="norm")
    with pytest.raises(ValueError, match="alpha"):
        slerp(a, b, 1.5)


@pytest.mark.parametrize("kind", ["text", "object", "truncated", "npy"])
@pytest.mark.parametrize("command", ["encode", "interpolate"])
def test_an_unreadable_npz_is_one_line_naming_the_file(
    run_dir: Path, tmp_path: Path, kind: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """read_images (shared by encode, interpolate and sample --init_images) names the file, not numpy."""
    bad = str(unreadable_npz(tmp_path / "bad.npz", kind))
    out = str(tmp_path / "z.npz")
    if command == "encode":
        argv = ["encode", "--checkpoint", str(run_dir), "--images", bad, "--output", out]
    else:
        argv = ["interpolate", bad, str(_images(tmp_path / "b.npz", 1)), "--checkpoint", str(run_dir)]
        argv += ["--output", out]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"'{bad}' is not a readable .npz (" in err and "allow_pickle" not in err
    assert not Path(out).exists()
