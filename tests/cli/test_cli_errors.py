"""User errors: one line on stderr, exit status 2, no traceback, nothing overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from impl.cli import explicit_flags, main, normalize_flag_spelling
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
    assert len(lines) <= 3  # argparse prints usage + one error line; ours prints one


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
