"""``iddpm recipes``, ``iddpm train --recipe NAME [--dry_run]`` and the new schedule flags, through main()."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from impl.cli import main
from impl.train.recipes import RECIPES
from tests.cli.tiny import tiny_train


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_recipes_lists_every_recipe_with_its_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["recipes"], capsys)
    assert code == 0
    for name in RECIPES:
        assert f"\n{name}: " in "\n" + out
    assert "--num_channels 192" in out and "--batch_size 2048" in out


def test_dry_run_prints_the_resolved_config_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(["train", "--recipe", "cifar10-hybrid", "--data", "x", "--dry_run"], capsys)
    assert code == 0
    config = json.loads(out)
    assert os.listdir(tmp_path) == []
    assert config["recipe"] == "cifar10-hybrid"
    assert config["lr"] == 1e-4 and config["batch_size"] == 128 and config["max_steps"] == 500_000
    assert config["ema_rate"] == "0.9999" and config["grad_clip"] == 0.0
    assert config["lr_schedule"] == "constant" and config["lr_anneal_steps"] == 0
    flags = config["model_flags"]
    assert flags["num_channels"] == 128 and flags["num_res_blocks"] == 3 and flags["dropout"] == 0.3
    assert flags["diffusion_steps"] == 4000 and flags["noise_schedule"] == "cosine"
    assert flags["channel_mult"] == "" and flags["attention_resolutions"] == "16,8"


def test_explicit_flags_override_the_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--recipe", "cifar10-hybrid", "--lr", "2e-4", "--dropout", "0.1", "--dry_run"]
    code, out, _ = run_cli(args, capsys)
    config = json.loads(out)
    assert code == 0 and config["lr"] == 2e-4 and config["model_flags"]["dropout"] == 0.1
    assert config["batch_size"] == 128  # the rest stays the recipe's


def test_digits_demo_is_the_no_flag_default(capsys: pytest.CaptureFixture[str]) -> None:
    _, plain, _ = run_cli(["train", "--dry_run"], capsys)
    _, demo, _ = run_cli(["train", "--recipe", "digits-demo", "--dry_run"], capsys)
    a, b = json.loads(plain), json.loads(demo)
    assert b.pop("recipe") == "digits-demo" and a.pop("recipe") == ""
    assert a == b
    _, longer, _ = run_cli(["train", "--recipe", "digits-demo", "--max_steps", "3000", "--dry_run"], capsys)
    assert json.loads(longer)["lr_anneal_steps"] == 3000  # as without the recipe: decay over the run


def test_dry_run_has_the_keys_of_a_runs_config_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main([*tiny_train(str(run)), "--max_steps", "1", "--num_grid_samples", "0"]) == 0
    capsys.readouterr()
    code, out, _ = run_cli([*tiny_train(str(tmp_path / "other")), "--dry_run"], capsys)
    assert code == 0
    written = json.loads((run / "config.json").read_text())
    shown = json.loads(out)
    assert set(shown) == set(written)
    assert set(shown["model_flags"]) == set(written["model_flags"])
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--recipe", "cifar100"], "--recipe 'cifar100' is not a known recipe; known: digits-demo"),
        (
            ["--lr_warmup_steps", "5000", "--lr_schedule", "constant"],
            "lr_warmup_steps 5000 is beyond the run",
        ),
        (["--lr_warmup_steps", "5000"], "lr_warmup_steps 5000 must be below the decay horizon"),
        (["--lr_schedule", "cosine", "--lr_anneal_steps", "0"], "lr_schedule cosine needs a decay horizon"),
        (["--ema_warmup", "True", "--ema_power", "0"], "ema_power must be > 0"),
        (["--predict_v", "True", "--predict_xstart", "True"], "predict_v and predict_xstart are exclusive"),
        (
            ["--loss_weighting", "min_snr", "--min_snr_gamma", "0"],
            "min_snr_gamma must be a finite number > 0",
        ),
        (["--min_snr_gamma", "-1"], "min_snr_gamma must be a finite number > 0"),
        (["--vlb_weight", "-0.5"], "vlb_weight must be a finite number >= 0"),
        (["--vlb_weight", "abc"], "vlb_weight must be a number >= 0"),
    ],
)
def test_bad_recipe_and_schedule_flags_are_one_line_errors(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["train", "--out_dir", str(tmp_path / "r"), *args, "--dry_run"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert not (tmp_path / "r").exists()


def test_objective_flags_reach_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--predict_v / --loss_weighting / --vlb_weight train a model and are recorded with the run."""
    run = tmp_path / "run"
    flags = [
        "--predict_v",
        "True",
        "--loss_weighting",
        "min_snr",
        "--min_snr_gamma",
        "3",
        "--vlb_weight",
        "0.01",
    ]
    assert main([*tiny_train(str(run)), "--max_steps", "2", "--num_grid_samples", "0", *flags]) == 0
    written = json.loads((run / "config.json").read_text())["model_flags"]
    assert written["predict_v"] is True and written["loss_weighting"] == "min_snr"
    assert written["min_snr_gamma"] == 3.0 and written["vlb_weight"] == "0.01"
    capsys.readouterr()
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(run),
                "--num_samples",
                "2",
                "--timestep_respacing",
                "5",
                "--progress",
                "False",
                "--output",
                str(tmp_path / "s.npz"),
            ]
        )
        == 0
    )
    assert (tmp_path / "s.npz").is_file()
