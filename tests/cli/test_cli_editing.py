"""``iddpm sample --init_images [--strength] [--mask] [--resample_jumps --jump_length]`` through
`impl.cli.main` on the tiny digits model (respaced to 5 steps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from impl.cli import main
from tests.cli.npz_files import unreadable_npz
from tests.cli.tiny import tiny_train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("editing") / "run"
    assert main(tiny_train(str(out), "--max_steps", "2", "--num_grid_samples", "0")) == 0
    return out


def _images(path: Path, n: int = 3, size: int = 8, channels: int = 1) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, arr_0=rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8))
    return path


def _left_half(path: Path, shape: tuple[int, ...], dtype: type = np.uint8) -> Path:
    """A keep mask holding the left half of every image (columns 0–3 of 8)."""
    mask = np.zeros(shape, dtype=dtype)
    if len(shape) == 4:
        mask[:, :, :4, :] = 1
    else:
        mask[..., :4] = 1
    np.savez(path, arr_0=mask)
    return path


def _sample(run_dir: Path, out: Path, *extra: str) -> np.ndarray:  # type: ignore[type-arg]
    argv = ["sample", "--checkpoint", str(run_dir), "--output", str(out), "--progress", "False"]
    assert main([*argv, "--timestep_respacing", "5", *extra]) == 0
    with np.load(out) as f:
        return np.asarray(f["arr_0"])


def _init(tmp_path: Path) -> tuple[Path, np.ndarray]:  # type: ignore[type-arg]
    path = _images(tmp_path / "init.npz")
    with np.load(path) as f:
        return path, np.asarray(f["arr_0"])


@pytest.mark.parametrize("ddim", ["False", "True"])
def test_strength_zero_returns_the_init_images_byte_for_byte(
    run_dir: Path, tmp_path: Path, ddim: str
) -> None:
    path, images = _init(tmp_path)
    out = _sample(
        run_dir, tmp_path / "s.npz", "--init_images", str(path), "--strength", "0", "--use_ddim", ddim
    )
    assert np.array_equal(out, images)  # --num_samples defaults to the number of init images


def test_strength_edits_and_reproduces_with_its_seed(run_dir: Path, tmp_path: Path) -> None:
    path, images = _init(tmp_path)
    flags = ("--init_images", str(path), "--strength", "0.6")
    first = _sample(run_dir, tmp_path / "a.npz", *flags)
    again = _sample(run_dir, tmp_path / "b.npz", *flags)
    other = _sample(run_dir, tmp_path / "c.npz", *flags, "--seed", "1")
    ddim = _sample(run_dir, tmp_path / "d.npz", *flags, "--use_ddim", "True")
    assert first.shape == images.shape and not np.array_equal(first, images)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert ddim.shape == images.shape and not np.array_equal(ddim, first)


def test_more_samples_than_images_repeat_them_cyclically(run_dir: Path, tmp_path: Path) -> None:
    path, images = _init(tmp_path)
    out = _sample(
        run_dir, tmp_path / "s.npz", "--init_images", str(path), "--strength", "0", "--num_samples", "5"
    )
    assert np.array_equal(out, images[[0, 1, 2, 0, 1]])


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((8, 8), np.uint8), ((3, 8, 8), np.bool_), ((3, 8, 8, 1), np.float32)],
)
@pytest.mark.parametrize(
    "extra", [(), ("--resample_jumps", "2", "--jump_length", "2"), ("--use_ddim", "True")]
)
def test_inpainting_keeps_the_masked_pixels_exactly(
    run_dir: Path, tmp_path: Path, shape: tuple[int, ...], dtype: type, extra: tuple[str, ...]
) -> None:
    path, images = _init(tmp_path)
    mask = _left_half(tmp_path / "m.npz", shape, dtype)
    out = _sample(run_dir, tmp_path / "s.npz", "--init_images", str(path), "--mask", str(mask), *extra)
    assert np.array_equal(out[:, :, :4], images[:, :, :4])  # bit for bit after uint8 quantisation
    assert not np.array_equal(out[:, :, 4:], images[:, :, 4:])


def test_inpainting_with_strength_starts_lower(run_dir: Path, tmp_path: Path) -> None:
    path, images = _init(tmp_path)
    mask = _left_half(tmp_path / "m.npz", (8, 8))
    flags = ("--init_images", str(path), "--mask", str(mask))
    zero = _sample(run_dir, tmp_path / "a.npz", *flags, "--strength", "0")
    some = _sample(run_dir, tmp_path / "b.npz", *flags, "--strength", "0.6")
    assert np.array_equal(zero, images)
    assert np.array_equal(some[:, :, :4], images[:, :, :4]) and not np.array_equal(some, images)


def _bad_mask(path: Path, array: np.ndarray) -> Path:  # type: ignore[type-arg]
    np.savez(path, arr_0=array)
    return path


@pytest.mark.parametrize(
    ("case", "flag"),
    [
        ("strength_high", "--strength"),
        ("strength_nan", "--strength"),
        ("strength_without_init", "--strength"),
        ("mask_without_init", "--mask"),
        ("img2img_without_strength", "--strength"),
        ("mask_shape", "--mask"),
        ("mask_count", "--mask"),
        ("mask_values", "--mask"),
        ("mask_255", "--mask"),
        ("init_size", "--init_images"),
        ("init_channels", "--init_images"),
        ("init_missing", "--init_images"),
        ("resample_jumps_zero", "--resample_jumps"),
        ("resample_without_mask", "--resample_jumps"),
        ("jump_length_zero", "--jump_length"),
        ("init_temperature", "--init_temperature"),
        ("jump_length_too_long", "--jump_length"),
        ("jump_length_respaced", "--jump_length"),
        ("jump_length_low_strength", "--jump_length"),
    ],
)
def test_bad_edit_flags_are_one_line_exit_2(
    run_dir: Path, tmp_path: Path, case: str, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = _init(tmp_path)
    mask = str(_left_half(tmp_path / "m.npz", (8, 8)))
    init = ("--init_images", str(path))
    argv = {
        "strength_high": [*init, "--strength", "1.5"],
        "strength_nan": [*init, "--strength", "nan"],
        "strength_without_init": ["--strength", "0.5"],
        "mask_without_init": ["--mask", mask],
        "img2img_without_strength": [*init],
        "mask_shape": [*init, "--mask", str(_bad_mask(tmp_path / "b.npz", np.ones((3, 7, 8), np.uint8)))],
        "mask_count": [*init, "--mask", str(_bad_mask(tmp_path / "b.npz", np.ones((2, 8, 8), np.uint8)))],
        "mask_values": [*init, "--mask", str(_bad_mask(tmp_path / "b.npz", np.full((8, 8), 0.5)))],
        "mask_255": [*init, "--mask", str(_bad_mask(tmp_path / "b.npz", np.full((8, 8), 255, np.uint8)))],
        "init_size": ["--init_images", str(_images(tmp_path / "big.npz", size=16)), "--strength", "0.5"],
        "init_channels": [
            "--init_images",
            str(_images(tmp_path / "rgb.npz", channels=3)),
            "--strength",
            "0.5",
        ],
        "init_missing": ["--init_images", str(tmp_path / "none.npz"), "--strength", "0.5"],
        "resample_jumps_zero": [*init, "--mask", mask, "--resample_jumps", "0"],
        "resample_without_mask": [*init, "--strength", "0.5", "--resample_jumps", "2"],
        "jump_length_zero": [*init, "--mask", mask, "--jump_length", "0"],
        "init_temperature": [*init, "--strength", "0.5", "--init_temperature", "0.5"],
        # no jump level: ℓ₀ = 20 (20 steps, j = 25), 10 (respaced, default j = 10), 1 (s = 0.04 of 20)
        "jump_length_too_long": [*init, "--mask", mask, "--resample_jumps", "2", "--jump_length", "25"],
        "jump_length_respaced": [
            *init,
            "--mask",
            mask,
            "--resample_jumps",
            "2",
            "--timestep_respacing",
            "10",
        ],
        "jump_length_low_strength": [*init, "--mask", mask, "--resample_jumps", "2", "--strength", "0.04"],
    }[case]
    out = tmp_path / "s.npz"
    code = main(["sample", "--checkpoint", str(run_dir), "--output", str(out), "--progress", "False", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and flag in err and "Traceback" not in err
    assert not out.exists()


@pytest.fixture(scope="module")
def class_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("editing_cond") / "run"
    assert (
        main(tiny_train(str(out), "--max_steps", "1", "--num_grid_samples", "0", "--class_cond", "True")) == 0
    )
    return out


def test_class_conditional_edits_take_the_labels_of_arr_1(
    class_run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """arr_1's labels follow their images (cyclically); --class_label overrides them; without arr_1 they
    are drawn; labels outside the model's classes are refused naming --init_images."""
    path, images = _init(tmp_path)
    np.savez(tmp_path / "lab.npz", arr_0=images, arr_1=np.array([7, 2, 9]))
    flags = ("--init_images", str(tmp_path / "lab.npz"), "--strength", "0.4", "--num_samples", "4")
    out = tmp_path / "s.npz"
    _sample(class_run_dir, out, *flags)
    with np.load(out) as f:
        assert f["arr_1"].tolist() == [7, 2, 9, 7]
    _sample(class_run_dir, out, *flags, "--class_label", "3", "--overwrite", "True")
    with np.load(out) as f:
        assert f["arr_1"].tolist() == [3, 3, 3, 3]
    _sample(class_run_dir, out, "--init_images", str(path), "--strength", "0.4", "--overwrite", "True")
    with np.load(out) as f:
        assert f["arr_1"].shape == (3,) and f["arr_1"].min() >= 0 and f["arr_1"].max() < 10
    np.savez(tmp_path / "bad.npz", arr_0=images, arr_1=np.array([7, 2, 10]))
    argv = ["sample", "--checkpoint", str(class_run_dir), "--output", str(tmp_path / "t.npz")]
    capsys.readouterr()
    assert main([*argv, "--init_images", str(tmp_path / "bad.npz"), "--strength", "0.4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--init_images" in err and "[0, 10)" in err


def test_default_names_mark_the_edit(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An edit's default file name does not collide with plain sampling's, nor with another strength's,
    nor inpainting's: ``_img2img<s>``, ``_inpaint``, ``_jumps<r>x<j>`` (after the respacing)."""
    import json
    import shutil

    run = shutil.copytree(run_dir, tmp_path / "run")  # the default names land in run/samples/
    path, _ = _init(tmp_path)
    mask = str(_left_half(tmp_path / "m.npz", (8, 8)))
    base = ["sample", "--checkpoint", str(run), "--progress", "False", "--timestep_respacing", "5"]
    init = ["--init_images", str(path)]
    cases = [  # the first also creates run/samples/ (the trajectory's staging folder lives there)
        (
            [*init, "--strength", "0.5", "--use_ddim", "True", "--save_trajectory", "2"],
            "samples_3x8x8x1_5_ddim_img2img0.5",
        ),
        (["--num_samples", "3"], "samples_3x8x8x1_5"),
        ([*init, "--strength", "0.5"], "samples_3x8x8x1_5_img2img0.5"),
        ([*init, "--strength", "0.6"], "samples_3x8x8x1_5_img2img0.6"),
        ([*init, "--strength", "1"], "samples_3x8x8x1_5_img2img1"),
        ([*init, "--mask", mask], "samples_3x8x8x1_5_inpaint"),
        ([*init, "--mask", mask, "--strength", "0.6"], "samples_3x8x8x1_5_inpaint_img2img0.6"),
        (
            [*init, "--mask", mask, "--resample_jumps", "2", "--jump_length", "2"],
            "samples_3x8x8x1_5_inpaint_jumps2x2",
        ),
    ]
    for flags, stem in cases:
        capsys.readouterr()
        assert main([*base, *flags]) == 0, capsys.readouterr().err
        report = json.loads(capsys.readouterr().out)
        assert report["samples"] == str(run / "samples" / f"{stem}.npz")
    expected = sorted(f"{stem}{ext}" for _, stem in cases for ext in (".npz", ".png"))
    expected = sorted([*expected, "samples_3x8x8x1_5_ddim_img2img0.5_trajectory"])
    assert sorted(p.name for p in (run / "samples").iterdir()) == expected  # every run its own files
    strips = run / "samples" / "samples_3x8x8x1_5_ddim_img2img0.5_trajectory"
    assert sorted(p.name for p in strips.iterdir()) == [f"sample_{i:05d}.png" for i in range(3)]


@pytest.mark.parametrize(
    ("argv", "largest"),
    [
        (("--jump_length", "25"), "the largest --jump_length that works is 19"),
        (("--timestep_respacing", "10"), "the largest --jump_length that works is 9"),
        (("--strength", "0.3", "--jump_length", "6"), "the largest --jump_length that works is 5"),
        (("--strength", "0.04"), "no --jump_length works"),
    ],
)
def test_resampling_without_a_jump_level_names_the_largest_jump_length(
    run_dir: Path, tmp_path: Path, argv: tuple[str, ...], largest: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """r > 1 where j >= ℓ₀ would run plain inpainting; it is refused before sampling, with the j that works
    (ℓ₀ − 1 for the chain: 20 steps, 10 respaced, ⌊0.3·20 + ½⌋ = 6, ⌊0.04·20 + ½⌋ = 1)."""
    path, _ = _init(tmp_path)
    mask = str(_left_half(tmp_path / "m.npz", (8, 8)))
    out = tmp_path / "s.npz"
    base = ["sample", "--checkpoint", str(run_dir), "--output", str(out), "--progress", "False"]
    code = main([*base, "--init_images", str(path), "--mask", mask, "--resample_jumps", "2", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and largest in err, err
    assert not out.exists()
    if largest.endswith("19"):  # the largest that works does run, and resamples
        assert (
            main(
                [
                    *base,
                    "--init_images",
                    str(path),
                    "--mask",
                    mask,
                    "--resample_jumps",
                    "2",
                    "--jump_length",
                    "19",
                ]
            )
            == 0
        )


@pytest.mark.parametrize("flag", ["--mask", "--init_images"])
@pytest.mark.parametrize("kind", ["text", "object", "truncated", "npy"])
def test_an_unreadable_mask_or_init_file_is_one_line_naming_it(
    run_dir: Path, tmp_path: Path, flag: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = _init(tmp_path)
    bad = str(unreadable_npz(tmp_path / "bad.npz", kind))
    given = {"--mask": ["--init_images", str(path), "--mask", bad], "--init_images": ["--init_images", bad]}
    out = tmp_path / "s.npz"
    argv = ["sample", "--checkpoint", str(run_dir), "--output", str(out), "--strength", "0.5", *given[flag]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{flag} '{bad}' is not a readable .npz (" in err and "allow_pickle" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (np.full((8, 8), np.nan), "NaN"),
        (np.full((8, 8), 255, np.uint8), "divide it by 255"),
        (np.full((8, 8), 0.5), "nothing in between"),
    ],
)
def test_a_bad_mask_is_told_the_reason_that_applies(
    run_dir: Path,
    tmp_path: Path,
    values: np.ndarray,
    reason: str,
    capsys: pytest.CaptureFixture[str],  # type: ignore[type-arg]
) -> None:
    path, _ = _init(tmp_path)
    mask = str(_bad_mask(tmp_path / "b.npz", values))
    argv = ["sample", "--checkpoint", str(run_dir), "--output", str(tmp_path / "s.npz")]
    assert main([*argv, "--init_images", str(path), "--mask", mask]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and reason in err, err
    if reason != "divide it by 255":
        assert "255" not in err


@pytest.fixture(scope="module")
def classifier_run(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A noisy-digits classifier for run_dir's diffusion (a few AdamW steps: guidance only has to act)."""
    from tests.cli.guidance_fixtures import train_noisy_digits_classifier, write_classifier_run

    state = next((run_dir / "checkpoints").glob("step_*/state.json"))
    model_flags = json.loads(state.read_text())["config"]["model_flags"]
    classifier = train_noisy_digits_classifier(model_flags, steps=10)
    return write_classifier_run(tmp_path_factory.mktemp("edit_clf") / "clf", classifier, model_flags)


def test_guided_edits_of_an_unconditional_model_target_the_labels_of_arr_1(
    run_dir: Path, classifier_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --classifier the init images' arr_1 labels are the guidance targets (cyclically): arr_1 all 3
    guides exactly as --class_label 3 does, and the labels written are arr_1's; --class_label overrides
    arr_1; labels outside the classifier's classes are refused naming --init_images before sampling."""
    _, images = _init(tmp_path)
    guide = ("--classifier", str(classifier_run), "--classifier_scale", "20", "--strength", "0.8")
    np.savez(tmp_path / "threes.npz", arr_0=images, arr_1=np.array([3, 3, 3]))
    np.savez(tmp_path / "mixed.npz", arr_0=images, arr_1=np.array([7, 2, 9]))
    np.savez(tmp_path / "plain.npz", arr_0=images)
    threes = _sample(run_dir, tmp_path / "a.npz", "--init_images", str(tmp_path / "threes.npz"), *guide)
    label3 = _sample(
        run_dir,
        tmp_path / "b.npz",
        "--init_images",
        str(tmp_path / "plain.npz"),
        *guide,
        "--class_label",
        "3",
    )
    assert np.array_equal(threes, label3)
    with np.load(tmp_path / "a.npz") as f:
        assert f["arr_1"].tolist() == [3, 3, 3]
    mixed_flags = ("--init_images", str(tmp_path / "mixed.npz"), *guide, "--num_samples", "4")
    mixed = _sample(run_dir, tmp_path / "c.npz", *mixed_flags)
    with np.load(tmp_path / "c.npz") as f:
        assert f["arr_1"].tolist() == [7, 2, 9, 7]
    assert not np.array_equal(mixed[:3], threes)  # other targets, same noise: other images
    _sample(run_dir, tmp_path / "d.npz", *mixed_flags, "--class_label", "3")
    with np.load(tmp_path / "d.npz") as f:
        assert f["arr_1"].tolist() == [3, 3, 3, 3]
    np.savez(tmp_path / "bad.npz", arr_0=images, arr_1=np.array([7, 2, 10]))
    out = tmp_path / "e.npz"
    argv = ["sample", "--checkpoint", str(run_dir), "--output", str(out), "--progress", "False"]
    capsys.readouterr()
    assert main([*argv, "--init_images", str(tmp_path / "bad.npz"), *guide]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--init_images" in err and "[0, 10)" in err, err
    assert not out.exists()


def test_an_unguided_unconditional_edit_ignores_arr_1(run_dir: Path, tmp_path: Path) -> None:
    """Without a classifier an unconditional model has no use for labels: arr_1 (even out of any range)
    changes nothing and no labels are written."""
    _, images = _init(tmp_path)
    np.savez(tmp_path / "lab.npz", arr_0=images, arr_1=np.array([-4, 99, 2]))
    np.savez(tmp_path / "plain.npz", arr_0=images)
    with_labels = _sample(
        run_dir, tmp_path / "a.npz", "--init_images", str(tmp_path / "lab.npz"), "--strength", "0.6"
    )
    plain = _sample(
        run_dir, tmp_path / "b.npz", "--init_images", str(tmp_path / "plain.npz"), "--strength", "0.6"
    )
    assert np.array_equal(with_labels, plain)
    with np.load(tmp_path / "a.npz") as f:
        assert "arr_1" not in f.files
