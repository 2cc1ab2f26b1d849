"""Run directories and resume semantics (issue 12, items 2, 4–8, 17, 19): refusals are one line, exit 2,
and write nothing."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from impl.cli import main
from impl.train import load_training_checkpoint
from tests.cli.tiny import tiny_train


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with a hash of its bytes."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def refused(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def four_steps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "four"
    assert main(tiny_train(str(run), "--max_steps", "4", "--num_grid_samples", "0")) == 0
    return run


@pytest.fixture
def run(four_steps: Path, tmp_path: Path) -> Path:
    """A private copy of a finished 4-step run (lr_anneal_steps = max_steps = 4)."""
    copy = tmp_path / "run"
    shutil.copytree(four_steps, copy)
    return copy


def resume(run_dir: Path, *extra: str) -> list[str]:
    return ["train", "--resume", str(run_dir), "--progress", "False", *extra]


def test_a_non_empty_out_dir_without_a_visible_checkpoint_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 2: a hidden complete checkpoint and a stray log are neither mixed into nor pruned."""
    target = tmp_path / "target"
    hidden = target / "checkpoints" / ".step_0000005.old-1"
    hidden.mkdir(parents=True)
    (hidden / "state.json").write_text("{}")
    (target / "log.jsonl").write_text('{"step": 5}\n')
    before = snapshot(target)
    refused(
        main(tiny_train(str(target), "--max_steps", "2")), capsys.readouterr().err, "not empty", "--overwrite"
    )
    assert snapshot(target) == before


def test_overwrite_replaces_the_old_runs_files_and_keeps_others(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "notes.txt").write_text("mine")
    refused(
        main(tiny_train(str(run), "--max_steps", "2")), capsys.readouterr().err, "already holds a checkpoint"
    )
    assert main(tiny_train(str(run), "--max_steps", "2", "--num_grid_samples", "0", "--overwrite")) == 0
    assert load_training_checkpoint(run).step == 2
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [2]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.json", "step_0000002"]
    assert (run / "notes.txt").read_text() == "mine"


def test_resume_into_another_out_dir_leaves_the_source_untouched(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 4: ``--resume RUN --out_dir NEW`` continues into NEW."""
    before = snapshot(run)
    new = tmp_path / "new"
    assert main(resume(run, "--out_dir", str(new), "--max_steps", "6", "--lr_anneal_steps", "6")) == 0
    assert snapshot(run) == before
    assert load_training_checkpoint(new).step == 6
    assert json.loads((new / "config.json").read_text())["out_dir"] == str(new)
    assert "trained 2 steps (step 6 in total)" in capsys.readouterr().err  # item 19


def test_extending_max_steps_past_the_lr_horizon_is_refused_and_extended_on_request(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 5: the docs' "…or further" resume trained at LR 0 without a word."""
    before = snapshot(run)
    refused(
        main(resume(run, "--max_steps", "8")),
        capsys.readouterr().err,
        "lr_anneal_steps 4",
        "--lr_anneal_steps 8",
    )
    assert snapshot(run) == before
    assert main(resume(run, "--max_steps", "8", "--lr_anneal_steps", "8")) == 0
    assert "trained 4 steps (step 8 in total)" in capsys.readouterr().err  # item 19
    old = load_file(str(run / "checkpoints" / "step_0000004" / "model.safetensors"))
    new = load_file(str(run / "checkpoints" / "step_0000008" / "model.safetensors"))
    assert any(not torch.equal(old[k], new[k]) for k in old)  # the weights moved: the LR was not 0
    assert json.loads((run / "config.json").read_text())["lr_anneal_steps"] == 8


@pytest.mark.parametrize(
    ("max_steps", "needle"), [("2", "below the checkpoint's step 4"), ("4", "nothing is left")]
)
def test_resume_with_max_steps_at_or_below_the_checkpoint_is_refused(
    run: Path, capsys: pytest.CaptureFixture[str], max_steps: str, needle: str
) -> None:
    """Item 6: it used to exit 0, print "trained 20 steps" and re-save the checkpoint."""
    before = snapshot(run)
    refused(
        main(resume(run, "--max_steps", max_steps)), capsys.readouterr().err, needle, "--max_steps above 4"
    )
    assert snapshot(run) == before


def test_a_resume_that_fails_to_load_writes_nothing(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Item 7: the weights do not fit the model the state.json describes; config.json stays as it was."""
    state = run / "checkpoints" / "step_0000004" / "state.json"
    meta = json.loads(state.read_text())
    meta["config"]["model_flags"]["num_channels"] = 64
    state.write_text(json.dumps(meta))
    before = snapshot(run)
    code = main(resume(run, "--max_steps", "6", "--lr_anneal_steps", "6"))
    refused(code, capsys.readouterr().err, "does not match the model")
    assert snapshot(run) == before


def test_out_dir_naming_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Item 8: it was a FileExistsError traceback."""
    target = tmp_path / "file"
    target.write_text("x")
    refused(main(tiny_train(str(target), "--max_steps", "1")), capsys.readouterr().err, "is a file")
    assert target.read_text() == "x"


def test_an_unwritable_out_dir_is_refused_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode_: False if Path(path) == tmp_path else real(path, mode_)
    )
    refused(
        main(tiny_train(str(tmp_path / "r"), "--max_steps", "1")),
        capsys.readouterr().err,
        "cannot be written",
    )
    assert list(tmp_path.iterdir()) == []


def test_an_os_error_during_the_work_is_one_line_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only file system (or a full disk) met while writing: strerror and the file, no traceback."""
    real = os.mkdir

    def read_only(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        if Path(path).name == "r":
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", read_only)
    code = main(tiny_train(str(tmp_path / "r"), "--max_steps", "1"))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip() == f"iddpm train: error: Read-only file system: {tmp_path / 'r'}"


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_every_file_of_a_run_honours_the_umask(tmp_path: Path, umask_027: None) -> None:
    """Item 17: checkpoints, config.json, latest.json, grids, samples and the NLL JSON were 0600."""
    run = tmp_path / "run"
    assert main(tiny_train(str(run), "--max_steps", "2", "--keep_checkpoints", "1")) == 0
    samples = tmp_path / "s.npz"
    common = ["--checkpoint", str(run), "--batch_size", "2", "--progress", "False"]
    assert (
        main(["sample", *common, "--num_samples", "2", "--output", str(samples), "--timestep_respacing", "2"])
        == 0
    )
    nll = tmp_path / "nll.json"
    del common[-2:]
    assert main(["nll", *common, "--num_samples", "2", "--output", str(nll)]) == 0
    files = [p for p in [*run.rglob("*"), samples, samples.with_suffix(".png"), nll] if p.is_file()]
    assert {p.name for p in files} >= {
        "config.json",
        "latest.json",
        "state.json",
        "log.jsonl",
        "model.safetensors",
    }
    assert {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in files} == {
        p.relative_to(tmp_path).as_posix(): 0o640 for p in files
    }


def test_a_corrupt_latest_checkpoint_names_the_explicit_resume_of_the_previous_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 18, through the CLI: the message says how to resume the previous checkpoint, and that works."""
    run = tmp_path / "run"
    assert (
        main(tiny_train(str(run), "--max_steps", "4", "--save_interval", "2", "--num_grid_samples", "0")) == 0
    )
    capsys.readouterr()
    (run / "checkpoints" / "step_0000004" / "ema_0.9999.safetensors").write_bytes(b"\0" * 64)
    before = snapshot(run)
    previous = run / "checkpoints" / "step_0000002"
    refused(main(resume(run, "--max_steps", "6")), capsys.readouterr().err, "corrupt", f"--resume {previous}")
    assert snapshot(run) == before
    assert main(resume(previous)) == 0  # the explicit resume trains on to the run's max_steps
    assert load_training_checkpoint(run).step == 4
