"""The guided-and-edited sampling features composed through the CLI, end to end on the digits:

``iddpm train`` (a tiny model) → ``iddpm train_classifier`` (a tiny noisy-image classifier, the run layout
``iddpm sample --classifier`` reads) → ``iddpm sample`` with classifier guidance, inpainting (img2img
strength, RePaint resampling) and a saved trajectory in one call.  The checks are the features' own
guarantees, which must survive the composition: the kept region is the init image byte for byte, every
label is the guidance target, the trajectory strip's last top tile is the saved sample, and scale 0 is the
unguided edit bit for bit while a large scale changes the generated region.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from impl.cli import main
from impl.data.digits import load_digits_arrays
from tests.cli.test_cli_trajectory import tile
from tests.cli.tiny import tiny_train

TARGET = 3


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipeline")
    model, classifier = root / "model", root / "classifier"
    assert main(tiny_train(str(model), "--max_steps", "2", "--num_grid_samples", "0")) == 0
    classifier_argv = [
        "train_classifier",
        "--out_dir",
        str(classifier),
        "--classifier_width",
        "32",
        "--classifier_depth",
        "1",
        "--diffusion_steps",
        "20",  # the model's noise: the classifier run records it and sampling checks it
        "--batch_size",
        "16",
        "--max_steps",
        "20",
        "--val_samples",
        "16",
        "--progress",
        "False",
    ]
    assert main(classifier_argv) == 0
    images, labels = load_digits_arrays()
    init = root / "init.npz"
    np.savez(init, arr_0=images[:4], arr_1=labels[:4])
    keep = np.zeros((8, 8), dtype=np.uint8)
    keep[:, :4] = 1  # keep the left half of every digit
    np.savez(root / "mask.npz", arr_0=keep)
    return {"root": root, "model": model, "classifier": classifier, "init": init, "mask": root / "mask.npz"}


def _edit_argv(runs: dict[str, Path], out: Path) -> list[str]:
    """``iddpm sample`` inpainting the init images (img2img strength 0.8, RePaint 2 × 2) into ``out``."""
    argv = ["sample", "--checkpoint", str(runs["model"]), "--timestep_respacing", "10"]
    argv += ["--init_images", str(runs["init"]), "--mask", str(runs["mask"]), "--strength", "0.8"]
    argv += ["--resample_jumps", "2", "--jump_length", "2"]
    return [*argv, "--output", str(out), "--progress", "False"]


def _edit(runs: dict[str, Path], out: Path, scale: str, *extra: str) -> np.ndarray[Any, Any]:
    guide = ["--classifier", str(runs["classifier"]), "--classifier_scale", scale]
    assert main([*_edit_argv(runs, out), *guide, "--class_label", str(TARGET), *extra]) == 0
    with np.load(out) as f:
        assert (f["arr_1"] == TARGET).all()  # the guidance target is what the file records
        return np.asarray(f["arr_0"])


def test_guided_inpainting_with_a_trajectory_keeps_every_guarantee(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "guided.npz"
    edited = _edit(runs, out, "20", "--save_trajectory", "3")
    with np.load(runs["init"]) as f:
        init = np.asarray(f["arr_0"])
    assert edited.shape == init.shape
    assert np.array_equal(edited[:, :, :4], init[:, :, :4])  # the kept half, byte for byte
    strips = sorted((tmp_path / "guided_trajectory").glob("*.png"))
    assert len(strips) == init.shape[0]
    strip = np.asarray(Image.open(strips[0]))[:, :, None]  # greyscale strip, 8x enlarged (auto rule)
    columns = (strip.shape[1] // 8 - 2) // 10  # 8-px tiles at a 10-px pitch behind a 2-px margin
    assert strip.shape[0] == 8 * (2 + 2 * 10)  # two rows: x_t above, x̂₀ below
    assert np.array_equal(tile(strip, 0, columns - 1, 8), edited[0])  # the last step's x_0 is the sample
    unguided = _edit(runs, tmp_path / "unguided.npz", "0")
    # The generated half is where guidance acts; the kept half is the init image either way.
    assert np.array_equal(unguided[:, :, :4], init[:, :, :4])
    assert not np.array_equal(unguided[:, :, 4:], edited[:, :, 4:])


def test_scale_zero_is_the_plain_edit_bit_for_bit(runs: dict[str, Path], tmp_path: Path) -> None:
    guided_zero = _edit(runs, tmp_path / "zero.npz", "0")
    argv = _edit_argv(runs, tmp_path / "plain.npz")
    assert main(argv) == 0
    with np.load(tmp_path / "plain.npz") as f:
        plain = np.asarray(f["arr_0"])
    assert np.array_equal(guided_zero, plain)


def test_classifier_free_guided_img2img_with_a_trajectory(runs: dict[str, Path], tmp_path: Path) -> None:
    """A class-conditional model with a null label (--class_dropout_prob): img2img under classifier-free
    guidance keeps its guarantees — w = 1 is the plain conditional edit bit for bit, w = 3 changes it, the
    labels come from the init images' arr_1, and the trajectory is written."""
    cfg = tmp_path / "cfg"
    # 20 steps at lr 1e-3, sampled with the raw weights: the label embedding then moves the prediction (the
    # EMA of a 2-step run is still the zero-initialised output layer, for which every w gives the same ε̂).
    argv = tiny_train(str(cfg), "--max_steps", "20", "--lr", "1e-3", "--num_grid_samples", "0")
    assert main([*argv, "--class_cond", "True", "--class_dropout_prob", "0.2"]) == 0

    def edit(out: Path, *extra: str) -> np.ndarray[Any, Any]:
        argv = ["sample", "--checkpoint", str(cfg), "--timestep_respacing", "10", "--use_ema", "False"]
        argv += ["--init_images", str(runs["init"]), "--strength", "0.6", "--output", str(out)]
        assert main([*argv, "--progress", "False", *extra]) == 0
        with np.load(out) as f, np.load(runs["init"]) as init:
            assert np.array_equal(f["arr_1"], init["arr_1"])
            return np.asarray(f["arr_0"])

    plain = edit(tmp_path / "plain.npz")
    assert np.array_equal(edit(tmp_path / "w1.npz", "--guidance_scale", "1"), plain)
    guided = edit(tmp_path / "w3.npz", "--guidance_scale", "3", "--save_trajectory", "2")
    assert not np.array_equal(guided, plain)
    assert len(list((tmp_path / "w3_trajectory").glob("sample_*.png"))) == plain.shape[0]
