"""Runs saved before a model flag existed (their config lacks the key) were built with the flag's default:
``iddpm sample`` and ``iddpm train --resume`` hold an explicit flag against that default, so the default
value is accepted and any other is refused in one line, never silently ignored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from impl.cli import main
from tests.cli.tiny import tiny_train

FLAG = "use_new_attention_order"  # default False


@pytest.fixture(scope="module")
def old_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("old_runs") / "run"
    assert main(tiny_train(str(run), "--max_steps", "1", "--num_grid_samples", "0")) == 0
    for state_path in (run / "checkpoints").glob("step_*/state.json"):
        state = json.loads(state_path.read_text())
        del state["config"]["model_flags"][FLAG]
        state_path.write_text(json.dumps(state))
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def _sample(run: Path, out: Path, *extra: str) -> int:
    argv = ["sample", "--checkpoint", str(run), "--num_samples", "1", "--timestep_respacing", "2"]
    return main([*argv, "--output", str(out), "--progress", "False", *extra])


def test_sample_holds_an_explicit_flag_against_the_default(
    old_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sample(old_run, tmp_path / "default.npz", f"--{FLAG}", "False") == 0
    capsys.readouterr()
    assert _sample(old_run, tmp_path / "other.npz", f"--{FLAG}", "True") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--{FLAG}=True" in err and "False" in err
    assert not (tmp_path / "other.npz").exists()


def test_resume_holds_an_explicit_flag_against_the_default(
    old_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy(old_run, tmp_path)
    resume = [
        "train",
        "--resume",
        str(run),
        "--max_steps",
        "2",
        "--lr_anneal_steps",
        "2",
        "--progress",
        "False",
    ]
    capsys.readouterr()
    assert main([*resume, f"--{FLAG}", "True"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--{FLAG}=True" in err
    assert main([*resume, f"--{FLAG}", "False"]) == 0
