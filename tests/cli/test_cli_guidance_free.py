"""Classifier-free guidance end to end on the digits: ``iddpm train --class_cond True --class_dropout_prob p``
then ``iddpm sample --guidance_scale w``; resume, the p = 0 layout, and the one-line refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from impl.cli import main
from testing.assertions import assert_close
from testing.tolerances import Cli, tolerance
from tests.cli.tiny import tiny_train

STEP2 = Path("checkpoints") / "step_0000002"
FAST = ["--max_steps", "2", "--num_grid_samples", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A p = 0.2 run, a class-conditional p = 0 run and an unconditional run (2 steps each; sampled with
    the raw weights, as the EMA at rate 0.9999 is still the initialisation, whose output block is zero)."""
    root = tmp_path_factory.mktemp("cfg")
    flags = {
        # lr 0.01: two steps move the label embedding enough for guidance to show in uint8 pixels
        "dropout": ["--class_cond", "True", "--class_dropout_prob", "0.2", "--lr", "0.01"],
        "conditional": ["--class_cond", "True"],
        "unconditional": [],
    }
    for name, extra in flags.items():
        assert main([*tiny_train(str(root / name)), *FAST, *extra]) == 0
    return {name: root / name for name in flags}


def sample(run: Path, out: Path, *extra: str) -> tuple[np.ndarray, np.ndarray | None]:
    argv = [
        "sample",
        "--checkpoint",
        str(run),
        "--output",
        str(out),
        "--num_samples",
        "4",
        "--batch_size",
        "4",
    ]
    assert (
        main([*argv, "--timestep_respacing", "5", "--progress", "False", "--use_ema", "False", *extra]) == 0
    )
    with np.load(out) as f:
        return f["arr_0"], f.get("arr_1")


def test_a_dropout_run_records_the_flag_and_learns_a_null_label_row(runs: dict[str, Path]) -> None:
    config = json.loads((runs["dropout"] / "config.json").read_text())["model_flags"]
    assert config["class_dropout_prob"] == 0.2 and config["num_classes"] == 10
    assert load_file(str(runs["dropout"] / STEP2 / "model.safetensors"))["label_emb.weight"].shape[0] == 11


def test_a_p_zero_run_keeps_the_original_layout(runs: dict[str, Path]) -> None:
    weights = load_file(str(runs["conditional"] / STEP2 / "model.safetensors"))
    assert weights["label_emb.weight"].shape[0] == 10


def test_sampling_with_guidance_scale_3(runs: dict[str, Path], tmp_path: Path) -> None:
    guided, labels = sample(runs["dropout"], tmp_path / "g.npz", "--guidance_scale", "3")
    assert guided.shape == (4, 8, 8, 1) and guided.dtype == np.uint8
    assert labels is not None and labels.min() >= 0 and labels.max() < 10  # real classes, never the null
    plain, plain_labels = sample(runs["dropout"], tmp_path / "p.npz")
    assert np.array_equal(labels, plain_labels) and not np.array_equal(guided, plain)


@pytest.mark.parametrize("ddim", [[], ["--use_ddim", "True"]])
def test_guidance_scale_one_is_conditional_sampling_bit_for_bit(
    runs: dict[str, Path], tmp_path: Path, ddim: list[str]
) -> None:
    plain, _ = sample(runs["dropout"], tmp_path / "p.npz", *ddim)
    one, _ = sample(runs["dropout"], tmp_path / "one.npz", *ddim, "--guidance_scale", "1")
    assert np.array_equal(one, plain)


def test_guidance_composes_with_precision(runs: dict[str, Path], tmp_path: Path) -> None:
    """The wrapper sits outside the autocast wrapper: bf16 network, float32 combination.  bf16 guided
    samples differ from bf16 unguided ones and lie within the budget of fp32 guided ones (mean |Δ| in
    uint8 levels, Cli.BF16_GUIDED_SAMPLES), which a bf16 path that dropped the guidance misses by 3x.
    (--compile with guidance is tested on the loops, tests/diffusion/test_classifier_free_guidance.py:
    tracing the U-Net takes too long for a CLI test.)"""
    bf16 = ("--precision", "bf16")
    fp32_guided, _ = sample(runs["dropout"], tmp_path / "f.npz", "--guidance_scale", "3")
    guided, _ = sample(runs["dropout"], tmp_path / "b.npz", "--guidance_scale", "3", *bf16)
    unguided, _ = sample(runs["dropout"], tmp_path / "u.npz", *bf16)
    assert guided.shape == fp32_guided.shape and guided.dtype == np.uint8
    assert not np.array_equal(guided, unguided)

    def mean_levels(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(np.int64) - b.astype(np.int64)).mean())

    tol = tolerance(Cli.BF16_GUIDED_SAMPLES)
    assert_close(mean_levels(guided, fp32_guided), 0.0, tol=tol, label="bf16 vs fp32 guided")
    # the budget separates: the unguided bf16 samples are far outside it
    assert mean_levels(unguided, fp32_guided) > 2 * tol.atol


def test_resume_of_a_dropout_run_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    flags = [
        "--class_cond",
        "True",
        "--class_dropout_prob",
        "0.3",
        "--num_grid_samples",
        "0",
        "--lr_anneal_steps",
        "4",
    ]
    assert main([*tiny_train(str(tmp_path / "straight")), *flags, "--max_steps", "4"]) == 0
    assert main([*tiny_train(str(tmp_path / "split")), *flags, "--max_steps", "2"]) == 0
    assert (
        main(["train", "--resume", str(tmp_path / "split"), "--max_steps", "4", "--progress", "False"]) == 0
    )
    step4 = Path("checkpoints") / "step_0000004"
    for name in ("model", "ema_0.9999"):
        a = load_file(str(tmp_path / "straight" / step4 / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "split" / step4 / f"{name}.safetensors"))
        assert a["label_emb.weight"].shape[0] == 11
        assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a), name


def test_a_checkpoint_without_the_flag_loads_unchanged(runs: dict[str, Path], tmp_path: Path) -> None:
    """A run saved before class_dropout_prob existed (its config lacks the key) samples as a p = 0 run."""
    old = tmp_path / "old"
    shutil.copytree(runs["conditional"], old)
    state_path = old / STEP2 / "state.json"
    state = json.loads(state_path.read_text())
    del state["config"]["model_flags"]["class_dropout_prob"]
    state_path.write_text(json.dumps(state))
    now, _ = sample(runs["conditional"], tmp_path / "now.npz")
    before, _ = sample(old, tmp_path / "before.npz")
    assert np.array_equal(before, now)


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str], needle: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("run", "scale", "needle"),
    [
        ("unconditional", "3", "--guidance_scale needs a class-conditional model"),
        ("conditional", "3", "was trained with class_dropout_prob 0"),
        ("dropout", "nan", "--guidance_scale must be a finite number"),
        ("dropout", "inf", "--guidance_scale must be a finite number"),
        ("dropout", "abc", "--guidance_scale must be a number, got 'abc'"),
    ],
)
def test_bad_guidance_is_a_one_line_error(
    runs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    run: str,
    scale: str,
    needle: str,
) -> None:
    out = tmp_path / "s.npz"
    _one_line_error(
        ["sample", "--checkpoint", str(runs[run]), "--output", str(out), "--guidance_scale", scale],
        capsys,
        needle,
    )
    assert not out.exists()


@pytest.mark.parametrize("label", ["10", "11"])  # 10: the null label's row, 11: beyond every row
def test_a_class_label_the_model_lacks_is_refused_naming_the_flag(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], label: str
) -> None:
    out = tmp_path / "s.npz"
    argv = ["sample", "--checkpoint", str(runs["dropout"]), "--output", str(out), "--class_label", label]
    needle = f"--class_label {label} is not a class of the model: -1 (random classes) or 0 … 9"
    _one_line_error([*argv, "--guidance_scale", "3"], capsys, needle)
    _one_line_error(argv, capsys, needle)
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ["--class_cond", "True", "--class_dropout_prob", "1.0"],
            "--class_dropout_prob must be a number in [0, 1)",
        ),
        (
            ["--class_cond", "True", "--class_dropout_prob", "-0.1"],
            "--class_dropout_prob must be a number in [0, 1)",
        ),
        (
            ["--class_cond", "True", "--class_dropout_prob", "nan"],
            "--class_dropout_prob must be a number in [0, 1)",
        ),
        (["--class_dropout_prob", "0.2"], "--class_dropout_prob 0.2 needs a class-conditional model"),
        (["--class_dropout_prob", "abc"], "--class_dropout_prob must be a number, got 'abc'"),
    ],
)
def test_bad_class_dropout_prob_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    for dry in ([], ["--dry_run"]):
        _one_line_error([*tiny_train(str(tmp_path / "r")), *FAST, *extra, *dry], capsys, needle)
        assert not (tmp_path / "r").exists()
