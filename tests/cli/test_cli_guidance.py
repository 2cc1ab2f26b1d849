"""``iddpm sample --classifier``: guidance on the digits does what it says, scale 0 is unguided sampling
bit for bit, the classifier-run layout, plain state-dict files and EMA weights load, bad input is one line.

The classifier is trained in the module fixture (100 AdamW steps on noised digits, a few seconds) and
written in ``iddpm train_classifier``'s run layout (tests/cli/guidance_fixtures.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from impl.cli import main
from tests.cli.guidance_fixtures import (
    TINY_CLASSIFIER_FLAGS,
    labels_and_log_probs,
    train_noisy_digits_classifier,
    write_classifier_run,
)
from tests.cli.test_cli_errors import assert_one_line_error
from tests.cli.tiny import tiny_train

TARGET = 3
# The plain-state-dict flags that describe TINY_CLASSIFIER_FLAGS (image size and channels: the model's).
FILE_FLAGS = [
    "--classifier_width",
    "32",
    "--classifier_depth",
    "1",
    "--classifier_attention_resolutions",
    "",
    "--classifier_pool",
    "adaptive",
    "--classifier_num_classes",
    "10",
    "--classifier_num_head_channels",
    "32",
]


def _model_flags(run: Path) -> dict[str, Any]:
    state = next((run / "checkpoints").glob("step_*/state.json"))
    flags: dict[str, Any] = json.loads(state.read_text())["config"]["model_flags"]
    return flags


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("guidance")
    model, cond = root / "model", root / "cond"
    assert main(tiny_train(str(model), "--max_steps", "2", "--num_grid_samples", "0")) == 0
    conditional = ("--class_cond", "True")
    assert main(tiny_train(str(cond), "--max_steps", "2", "--num_grid_samples", "0", *conditional)) == 0
    classifier = train_noisy_digits_classifier(_model_flags(model))
    # the run's EMA holds other weights (a shorter run from another seed), so a reader that ignores
    # --classifier_use_ema, or reads the wrong file, samples differently
    ema = train_noisy_digits_classifier(_model_flags(model), steps=20, seed=1)
    clf_run = write_classifier_run(root / "clf", classifier, _model_flags(model), ema=(0.999, ema))
    state = {k: v.contiguous() for k, v in classifier.state_dict().items()}
    save_file(state, str(root / "clf.safetensors"))
    torch.save(state, root / "clf.pt")
    save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(root / "clf_ema.safetensors"))
    return {"root": root, "model": model, "cond": cond, "classifier": classifier, "clf_run": clf_run}


def _sample(
    checkpoint: Path, out: Path, *extra: str, num_samples: int = 8, capsys: Any = None
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    argv = [
        "sample",
        "--checkpoint",
        str(checkpoint),
        "--num_samples",
        str(num_samples),
        "--batch_size",
        "64",
        "--output",
        str(out),
        "--progress",
        "False",
        "--timestep_respacing",
        "10",
        *extra,
    ]
    assert main(argv) == 0
    with np.load(out) as f:
        return f["arr_0"], (f["arr_1"] if "arr_1" in f.files else None)


def _guided_towards_target(runs: dict[str, Any], out: Path, scale: str, *mode: str) -> tuple[float, float]:
    """(fraction of 64 samples the classifier calls class 3 at t = 0, their mean log p(3 | x_0))."""
    images, labels = _sample(
        runs["model"],
        out,
        "--classifier",
        str(runs["clf_run"]),
        "--classifier_scale",
        scale,
        "--class_label",
        str(TARGET),
        *mode,
        num_samples=64,
    )
    assert labels is not None and (labels == TARGET).all()
    log_p = labels_and_log_probs(runs["classifier"], images)
    return float((log_p.argmax(dim=1) == TARGET).float().mean()), float(log_p[:, TARGET].mean())


def test_large_scale_raises_the_fraction_of_the_target_class(runs: dict[str, Any], tmp_path: Path) -> None:
    """64 samples of the (2-step) unconditional model, all guided towards class 3, 10 respaced steps; the
    judge is the guiding classifier at t = 0.  Measured (ancestral): 3/64 samples are 3s at s = 0, 49/64
    at s = 10; mean log p(3 | x_0) −4.48 → −0.78.  The checks leave wide margins: a rise of the fraction by
    at least 0.4 to a majority, and of the mean log-probability by at least 1 nat."""
    fraction0, log_p0 = _guided_towards_target(runs, tmp_path / "s0.npz", "0")
    fraction, log_p = _guided_towards_target(runs, tmp_path / "s10.npz", "10")
    assert fraction >= fraction0 + 0.4 and fraction > 0.5, (fraction0, fraction)
    assert log_p >= log_p0 + 1.0, (log_p0, log_p)


def test_large_scale_raises_the_target_log_probability_with_ddim(
    runs: dict[str, Any], tmp_path: Path
) -> None:
    """The same with DDIM (η = 0, the score form).  This 2-step model's x̂_0 is clipped to ±1 almost
    everywhere, which leaves the deterministic path little room: measured 6/64 → 9/64 samples are 3s and the
    mean log p(3 | x_0) −4.31 → −2.70; checked: the log-probability rises by at least 1 nat and the fraction
    does not fall (the digits model of docs/guidance.md shows the fraction rising with DDIM too)."""
    fraction0, log_p0 = _guided_towards_target(runs, tmp_path / "s0.npz", "0", "--use_ddim", "True")
    fraction, log_p = _guided_towards_target(runs, tmp_path / "s10.npz", "10", "--use_ddim", "True")
    assert log_p >= log_p0 + 1.0 and fraction >= fraction0, (fraction0, fraction, log_p0, log_p)


def test_random_labels_are_seeded_recorded_and_followed(runs: dict[str, Any], tmp_path: Path) -> None:
    guide = ["--classifier", str(runs["clf_run"]), "--classifier_scale", "10"]
    images, labels = _sample(runs["model"], tmp_path / "a.npz", *guide, num_samples=64)
    again, labels_again = _sample(runs["model"], tmp_path / "b.npz", *guide, num_samples=64)
    assert labels is not None and labels_again is not None
    assert np.array_equal(images, again) and np.array_equal(labels, labels_again)
    assert len(np.unique(labels)) >= 5  # uniform over 10 classes, not one
    predicted = labels_and_log_probs(runs["classifier"], images).argmax(dim=1).numpy()
    assert (predicted == labels).mean() > 0.5  # measured 49/64 = 0.77; unguided: chance, ~0.1


@pytest.mark.parametrize("mode", [[], ["--use_ddim", "True"], ["--use_ddim", "True", "--eta", "0.5"]])
def test_scale_zero_is_unguided_sampling_bit_for_bit(
    runs: dict[str, Any], tmp_path: Path, mode: list[str]
) -> None:
    guide = ["--classifier", str(runs["clf_run"]), "--classifier_scale", "0"]
    plain, none = _sample(runs["model"], tmp_path / "p.npz", *mode)
    guided, labels = _sample(runs["model"], tmp_path / "g.npz", *guide, *mode)
    assert none is None and labels is not None and labels.shape == (8,)  # labels drawn, recorded
    assert np.array_equal(plain, guided)
    plain_c, labels_c = _sample(runs["cond"], tmp_path / "pc.npz", *mode)
    guided_c, labels_gc = _sample(runs["cond"], tmp_path / "gc.npz", *guide, *mode)
    assert np.array_equal(plain_c, guided_c) and np.array_equal(labels_c, labels_gc)  # type: ignore[arg-type]


def test_guidance_changes_the_samples_and_the_labels_do_not_change_the_noise(
    runs: dict[str, Any], tmp_path: Path
) -> None:
    plain, _ = _sample(runs["model"], tmp_path / "p.npz")
    guided, _ = _sample(runs["model"], tmp_path / "g.npz", "--classifier", str(runs["clf_run"]))
    assert not np.array_equal(plain, guided)


def test_state_dict_files_and_ema_weights_load(runs: dict[str, Any], tmp_path: Path) -> None:
    guide = ["--classifier_scale", "5", "--class_label", "7"]
    from_run, _ = _sample(runs["model"], tmp_path / "r.npz", "--classifier", str(runs["clf_run"]), *guide)
    for name in ("clf.safetensors", "clf.pt"):
        path = runs["root"] / name
        from_file, _ = _sample(
            runs["model"],
            tmp_path / f"{path.stem}{path.suffix}.npz",
            "--classifier",
            str(path),
            *FILE_FLAGS,
            *guide,
        )
        assert np.array_equal(from_run, from_file), name
    # --classifier_use_ema guides with the run's EMA file: other weights (the fixture), so other samples,
    # and exactly those of the same weights given as a plain state-dict file
    use_ema = ("--classifier", str(runs["clf_run"]), "--classifier_use_ema")
    ema, _ = _sample(runs["model"], tmp_path / "e.npz", *use_ema, *guide)
    assert not np.array_equal(from_run, ema)
    ema_file = ("--classifier", str(runs["root"] / "clf_ema.safetensors"), *FILE_FLAGS)
    from_ema_file, _ = _sample(runs["model"], tmp_path / "ef.npz", *ema_file, *guide)
    assert np.array_equal(ema, from_ema_file)


def test_precision_bf16_guides_too(runs: dict[str, Any], tmp_path: Path) -> None:
    images, _ = _sample(
        runs["model"],
        tmp_path / "b.npz",
        "--classifier",
        str(runs["clf_run"]),
        "--classifier_scale",
        "10",
        "--class_label",
        str(TARGET),
        "--precision",
        "bf16",
        num_samples=32,
    )
    predicted = labels_and_log_probs(runs["classifier"], images).argmax(dim=1)
    assert float((predicted == TARGET).float().mean()) > 0.5


def _error(argv: list[str], capsys: pytest.CaptureFixture[str], needle: str) -> None:
    code = main(["sample", "--num_samples", "2", "--progress", "False", *argv])
    assert_one_line_error(code, capsys.readouterr().err, needle)


def test_bad_flags_are_one_line_errors(
    runs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clf, pt = str(runs["clf_run"]), str(runs["root"] / "clf.pt")
    wide = [*FILE_FLAGS, "--classifier_width", "64"]  # builds, but is not the file's layout
    cases: list[tuple[list[str], str]] = [
        *(
            (["--classifier", clf, "--classifier_scale", bad], "--classifier_scale")
            for bad in ("nan", "inf", "-1")
        ),
        (["--classifier_scale", "2"], "--classifier_scale needs --classifier"),
        (["--classifier_width", "64"], "--classifier_width needs --classifier"),
        (["--classifier", clf, "--class_label", "10"], "--class_label 10"),
        (["--classifier", clf, "--compile", "True"], "--compile"),
        (["--classifier", str(runs["model"])], "diffusion-model run"),
        (["--classifier", str(tmp_path / "none")], "does not exist"),
        (["--classifier", clf, "--classifier_width", "64"], "classifier_width"),
        (["--classifier", pt], "--classifier_* flags"),  # the default 32,16 attention at 8 px
        (["--classifier", pt, *wide], "clf.pt"),
        (["--classifier", pt, "--classifier_use_ema", *FILE_FLAGS], "use_ema"),
    ]
    for argv, needle in cases:
        _error(
            ["--checkpoint", str(runs["model"]), "--output", str(tmp_path / "x.npz"), *argv], capsys, needle
        )
    assert not (tmp_path / "x.npz").exists()


def test_classifier_that_disagrees_with_the_model_is_refused(
    runs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import impl

    model_flags = _model_flags(runs["model"])
    out = ["--output", str(tmp_path / "x.npz")]
    cases: list[tuple[dict[str, Any], dict[str, Any], str, str]] = [
        ({"num_classes": 5}, {}, str(runs["cond"]), "5 classes"),
        ({"image_size": 16, "channel_mult": "1,2"}, {}, str(runs["model"]), "image_size 16"),
        ({"in_channels": 3}, {}, str(runs["model"]), "in_channels 3"),
        ({}, {"noise_schedule": "linear", "diffusion_steps": 1000}, str(runs["model"]), "diffusion_steps"),
    ]
    for i, (clf_change, noise_change, checkpoint, needle) in enumerate(cases):
        flags = {**TINY_CLASSIFIER_FLAGS, **clf_change}
        classifier = impl.create_classifier(**flags)
        run = write_classifier_run(
            tmp_path / f"c{i}", classifier, {**model_flags, **noise_change}, classifier_flags=flags
        )
        _error(["--checkpoint", checkpoint, "--classifier", str(run), *out], capsys, needle)
    assert not (tmp_path / "x.npz").exists()
