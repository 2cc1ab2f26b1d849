"""User errors: one line on stderr, exit status 2, no traceback, nothing overwritten."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from impl.cli import build_parser, explicit_flags, main, normalize_flag_spelling
from tests.cli.tiny import tiny_train


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert any(needle in line for line in lines), err
    assert len(lines) == 1, err  # argparse's usage is not printed (impl.cli.one_line)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    assert main(tiny_train(str(run_dir), "--max_steps", "2")) == 0
    return run_dir


def test_dashes_in_flag_names_are_accepted() -> None:
    assert normalize_flag_spelling(["--image-size", "8", "--lr-anneal-steps=3", "-1"]) == [
        "--image_size",
        "8",
        "--lr_anneal_steps=3",
        "-1",
    ]
    assert explicit_flags(["train", "--image_size", "8", "--lr", "1e-3"]) == {"image_size", "lr"}


def test_unknown_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["train", "--no_such_flag", "1"], capsys)
    assert_one_line_error(code, err, "unrecognized arguments")


# The flags the review found printing argparse's whole usage (51 lines for sample) before the error.
NON_NUMERIC_VALUES = [
    (["sample", "--strength", "abc"], "--strength must be a number, got 'abc'"),
    (["sample", "--guidance_scale", "abc"], "--guidance_scale must be a number, got 'abc'"),
    (["sample", "--classifier_scale", "abc"], "--classifier_scale must be a number, got 'abc'"),
    (["sample", "--resample_jumps", "2.5"], "--resample_jumps must be an integer, got '2.5'"),
    (["sample", "--jump_length", "x"], "--jump_length must be an integer, got 'x'"),
    (["sample", "--temperature", "abc"], "--temperature must be a number, got 'abc'"),
    (["sample", "--init_temperature", "abc"], "--init_temperature must be a number, got 'abc'"),
    (["sample", "--eta", "abc"], "--eta must be a number, got 'abc'"),
    (["train", "--class_dropout_prob", "abc"], "--class_dropout_prob must be a number, got 'abc'"),
    (["train_classifier", "--val_samples", "many"], "--val_samples must be an integer, got 'many'"),
    (["train_classifier", "--lr", "fast"], "--lr must be a number, got 'fast'"),
    (["train_classifier", "--classifier_width", "1.5"], "--classifier_width must be an integer, got '1.5'"),
]


@pytest.mark.parametrize(("argv", "message"), NON_NUMERIC_VALUES)
def test_a_value_argparse_cannot_read_is_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(argv, capsys)
    assert_one_line_error(code, err, message)
    assert err.startswith(f"iddpm {argv[0]}: error: {message}; see 'iddpm {argv[0]} --help'"), err


def _typed_flags() -> list[tuple[str, str, str]]:
    """(command, flag, bad value) for every int- or float-typed flag of every command (a flag with
    aliases is named by all of them, as argparse does: ``--max_steps/--iterations``)."""
    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    cases = []
    for name, parser in commands.choices.items():
        for action in parser._actions:
            if action.type in (int, float) and action.option_strings:
                flag = "/".join(action.option_strings)
                cases.append((name, flag, "2.5" if action.type is int else "abc"))
    return cases


def test_every_numeric_flag_of_every_command_refuses_text_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases = _typed_flags()
    named = {(argv[0], argv[1]) for argv, _ in NON_NUMERIC_VALUES}
    assert named <= {(name, flag) for name, flag, _ in cases}  # the enumeration sees the new flags
    for name, flag, bad in cases:
        code, err = run([name, flag.split("/")[-1], bad], capsys)
        what = "an integer" if bad == "2.5" else "a number"
        assert_one_line_error(code, err, f"{flag} must be {what}, got '{bad}'")


def test_other_usage_errors_are_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["sample", "--progress", "maybe"], capsys)
    assert_one_line_error(code, err, "--progress: boolean value expected")
    code, err = run(["sample", "--num_samples", "2"], capsys)
    assert_one_line_error(code, err, "required: --checkpoint/--model_path")
    code, err = run(["train", "--data_loader", "fast"], capsys)
    assert_one_line_error(code, err, "--data_loader: invalid choice: 'fast'")
    code, err = run([], capsys)
    assert_one_line_error(code, err, "iddpm: error: the following arguments are required: COMMAND")


def test_bad_value_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run(tiny_train(str(tmp_path / "r"), "--ema_rate", "1.5"), capsys)
    assert_one_line_error(code, err, "ema_rate")
    code, err = run(tiny_train(str(tmp_path / "r"), "--noise_schedule", "quadratic"), capsys)
    assert_one_line_error(code, err, "quadratic")
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_missing_data_path_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run(tiny_train(str(tmp_path / "r"), "--data", str(tmp_path / "nothing_here")), capsys)
    assert_one_line_error(code, err, "does not exist")


def test_existing_run_is_not_overwritten(trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (trained_run / "checkpoints" / "latest.json").read_bytes()
    code, err = run(tiny_train(str(trained_run), "--max_steps", "2"), capsys)
    assert_one_line_error(code, err, "already holds a checkpoint")
    assert (trained_run / "checkpoints" / "latest.json").read_bytes() == before


def test_resume_with_a_conflicting_model_flag_exits_2(
    trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(["train", "--resume", str(trained_run), "--num_channels", "64"], capsys)
    assert_one_line_error(code, err, "num_channels")


def test_sample_from_missing_checkpoint_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run(["sample", "--checkpoint", str(tmp_path / "none.pt")], capsys)
    assert_one_line_error(code, err, "does not exist")


def test_corrupt_checkpoint_exits_2_and_writes_nothing(
    trained_run: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    step_dir = broken / "checkpoints" / "step_0000002"
    (step_dir / "ema_0.9999.safetensors").write_bytes(b"not a safetensors file")
    out = tmp_path / "s.npz"
    argv = ["sample", "--checkpoint", str(broken), "--output", str(out), "--num_samples", "2"]
    code, err = run(argv, capsys)
    assert_one_line_error(code, err, "corrupt")
    assert not out.exists()


def test_corrupt_original_pt_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x00garbage")
    code, err = run(["sample", "--checkpoint", str(bad), "--num_samples", "2"], capsys)
    assert code == 2 and "Traceback" not in err


def test_mismatched_architecture_flag_for_run_checkpoint_exits_2(
    trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(["sample", "--checkpoint", str(trained_run), "--num_res_blocks", "3"], capsys)
    assert_one_line_error(code, err, "num_res_blocks")


def test_evaluate_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run(["evaluate", str(tmp_path / "x.npz")], capsys)
    assert_one_line_error(code, err, "does not exist")


def test_run_directory_layout(trained_run: Path) -> None:
    config = json.loads((trained_run / "config.json").read_text())
    assert config["model_flags"]["in_channels"] == 1 and config["max_steps"] == 2
    step_dir = trained_run / "checkpoints" / "step_0000002"
    assert {p.name for p in step_dir.iterdir()} >= {
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
        "ema_0.9999.safetensors",
    }
    assert (trained_run / "samples" / "step_0000002.png").is_file()
    log = [json.loads(line) for line in (trained_run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2
    assert {"loss", "mse", "vb", "loss_q0", "loss_q3", "grad_norm", "lr", "samples_per_sec"} <= set(log[-1])
