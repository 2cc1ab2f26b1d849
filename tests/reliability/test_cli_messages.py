"""Errors that escaped or misled (issue 12, items 8, 9, 11, 12, 14–16): one precise line, exit 2, nothing
written."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import reference
from impl.cli import main
from impl.data import save_npz_atomic
from impl.factory import create_gaussian_diffusion, create_model
from impl.nn import save_checkpoint
from impl.train.errors import one_line
from tests.cli.tiny import tiny_train

# The model of tests/cli/tiny.py as flags of sample/nll for a bare state dict.
PT_FLAGS = {"image_size": 8, "in_channels": 1, "num_channels": 32, "num_res_blocks": 1, "channel_mult": "1,2"}
PT_ARGS = [
    *[tok for k, v in PT_FLAGS.items() for tok in (f"--{k}", str(v))],
    *["--attention_resolutions", "", "--diffusion_steps", "21", "--progress", "False"],
]


def one_error_line(code: int, err: str, expected_code: int = 2) -> str:
    assert code == expected_code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err and "\x1b" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("msg") / "run"
    assert main(tiny_train(str(run), "--max_steps", "1", "--num_grid_samples", "0")) == 0
    return run


class _RunsAShell:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, ("echo this must never run",))


def test_one_line_keeps_every_line_of_a_diagnosis_and_drops_ansi_codes() -> None:
    text = (
        "the checkpoint does not fit the model:\n  shape mismatches: a\nflags that probably differ:\n  --x 1"
    )
    assert one_line(text) == (
        "the checkpoint does not fit the model: shape mismatches: a; flags that probably differ: --x 1"
    )
    assert one_line("\x1b[31mred\x1b[0m\n\nnext") == "red; next"


def test_a_state_dict_of_another_architecture_names_the_differing_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 11: the CLI printed "the checkpoint does not fit the model:" and stopped."""
    path = save_checkpoint(create_model(**{**PT_FLAGS, "attention_resolutions": ""}), tmp_path / "m.pt")
    args = [
        "sample",
        "--checkpoint",
        str(path),
        *PT_ARGS,
        "--num_channels",
        "64",
        "--output",
        str(tmp_path / "s.npz"),
    ]
    line = one_error_line(main(args), capsys.readouterr().err)
    assert "does not fit the model:" in line and "--num_channels" in line and "32" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (lambda p: torch.save({"w": _RunsAShell()}, p), ["refused", "posix.system", "never runs code"]),
        (lambda p: p.write_bytes(pickle.dumps(_RunsAShell())), ["refused", "never runs code"]),
        (lambda p: p.write_bytes(b"\x00not a pickle at all" * 8), ["not a PyTorch checkpoint"]),
        (lambda p: p.write_bytes(b""), ["not a PyTorch checkpoint"]),
    ],
    ids=["torch-save-of-os-system", "raw-pickle-of-os-system", "garbage", "empty"],
)
def test_an_untrusted_or_garbage_pt_file_says_what_was_refused_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any, needles: list[str]
) -> None:
    """Item 12: never torch's "re-running with weights_only=False will likely succeed"."""
    path = tmp_path / "m.pt"
    content(path)
    line = one_error_line(main(["sample", "--checkpoint", str(path), *PT_ARGS]), capsys.readouterr().err)
    for needle in needles:
        assert needle in line, line
    assert "weights_only" not in line and "likely succeed" not in line


def test_a_decompression_bomb_in_a_data_folder_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 9: PIL's DecompressionBombError escaped.  The pixel limit is lowered so a 32x32 PNG is a bomb
    (PIL raises above twice ``MAX_IMAGE_PIXELS``), which is the same code path as a real one."""
    folder = tmp_path / "data"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(folder / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    args = tiny_train(str(tmp_path / "run"), "--data", str(folder), "--max_steps", "1")
    line = one_error_line(main(args), capsys.readouterr().err)
    assert "bomb.png" in line and "decompression bomb" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["3", "16", "4,2"])
def test_attention_resolutions_the_network_lacks_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """Item 14: 3 at 8 px behaved as 4; 16 at 8 px removed attention; 2 is no level of a (1,2) net."""
    args = [*tiny_train(str(tmp_path / "r"), "--max_steps", "1"), "--attention_resolutions", value]
    line = one_error_line(main(args), capsys.readouterr().err)
    assert "attention_resolutions" in line and "allowed: 8, 4" in line
    assert not (tmp_path / "r").exists()


def test_class_label_on_an_unconditional_model_is_refused(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.npz"
    args = ["sample", "--checkpoint", str(trained_run), "--class_label", "3", "--output", str(out)]
    line = one_error_line(main([*args, "--progress", "False"]), capsys.readouterr().err)
    assert "--class_label 3" in line and "unconditional" in line
    assert not out.exists()


def test_a_negative_eta_is_refused_on_the_cli_and_in_the_api(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.npz"
    args = ["sample", "--checkpoint", str(trained_run), "--use_ddim", "--eta", "-0.5", "--output", str(out)]
    assert "--eta" in one_error_line(main(args), capsys.readouterr().err)
    assert not out.exists()
    diffusion = create_gaussian_diffusion(steps=4, noise_schedule="cosine")

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    x = torch.zeros(2, 1, 4, 4)
    for eta in (-0.5, float("nan")):
        with pytest.raises(ValueError, match=r"^eta must be a finite number >= 0"):
            diffusion.ddim_sample_loop(model, (2, 1, 4, 4), eta=eta)
        with pytest.raises(ValueError, match=r"^eta must be"):
            diffusion.ddim_sample(model, x, torch.tensor([3, 3]), eta=eta)


def test_sample_output_naming_a_folder_is_refused_before_sampling(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 8: the IsADirectoryError came only after the whole sampling run."""
    import impl.commands.generation as inference

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("sampling ran before the output was checked")

    monkeypatch.setattr(inference, "generate_samples", never)
    for flag in ("--output", "--grid"):
        args = ["sample", "--checkpoint", str(trained_run), flag, str(tmp_path), "--progress", "False"]
        line = one_error_line(main(args), capsys.readouterr().err)
        assert f"{flag} {str(tmp_path)!r} is a folder" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("shape", "stored"), [((4, 16, 16, 1), "16x16x1"), ((4, 8, 8, 3), "8x8x3")])
def test_nll_on_data_of_another_size_or_channel_count_needs_resize(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: tuple[int, ...], stored: str
) -> None:
    """Item 14: such data was silently resized and converted."""
    data = tmp_path / "d.npz"
    save_npz_atomic(data, np.full(shape, 128, dtype=np.uint8))
    out = tmp_path / "nll.json"
    args = [
        "nll",
        "--checkpoint",
        str(trained_run),
        "--data",
        str(data),
        "--output",
        str(out),
        "--batch_size",
        "4",
    ]
    line = one_error_line(main(args), capsys.readouterr().err)
    assert stored in line and "8x8x1" in line and "--resize" in line
    assert not out.exists()
    assert main([*args, "--resize"]) == 0
    recorded = json.loads(out.read_text())["data_conversion"]
    assert recorded == {"from": list(map(int, stored.split("x"))), "to": [8, 8, 1]}


def test_nll_records_no_conversion_for_data_of_the_models_size(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "nll.json"
    args = [
        "nll",
        "--checkpoint",
        str(trained_run),
        "--num_samples",
        "2",
        "--batch_size",
        "2",
        "--output",
        str(out),
    ]
    assert main(args) == 0
    assert json.loads(out.read_text())["data_conversion"] is None


def test_linear_schedule_at_T_20_is_refused_naming_the_smallest_T(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 15: β_T = 20/T = 1 at T = 20 made ᾱ_T = 0 and training end in NaN."""
    args = [*tiny_train(str(tmp_path / "r"), "--max_steps", "1"), "--noise_schedule", "linear"]
    line = one_error_line(main(args), capsys.readouterr().err)
    assert "T >= 21" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("T", [1, 19, 20, 21, 22, 40])
def test_reference_and_impl_agree_where_the_linear_schedule_starts(T: int) -> None:
    from impl.diffusion.schedule import get_named_beta_schedule

    accepted = []
    for build in (reference.get_named_beta_schedule, get_named_beta_schedule):
        try:
            betas = build("linear", T)
        except ValueError as err:
            assert "T >= 21" in str(err)
            accepted.append(False)
        else:
            assert float(np.max(betas)) < 1.0
            accepted.append(True)
    assert accepted == [T >= 21] * 2


def test_evaluate_on_a_folder_says_it_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Item 16: it said the file "does not exist"."""
    line = one_error_line(main(["evaluate", str(tmp_path)]), capsys.readouterr().err)
    assert "is a folder" in line and "does not exist" not in line


@pytest.mark.parametrize("bad", [-1, 10])
def test_a_timestep_outside_0_T_is_a_value_error_naming_t_and_the_range(bad: int) -> None:
    """Item 16: a bare IndexError naming neither t nor the range."""
    diffusion = create_gaussian_diffusion(steps=10, noise_schedule="cosine", learn_sigma=True)
    x = torch.zeros(2, 1, 4, 4)
    t = torch.tensor([0, bad])

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 2, *x.shape[2:])

    calls = [
        lambda: diffusion.q_sample(x, t),
        lambda: diffusion.p_sample(model, x, t),
        lambda: diffusion.training_losses(model, x, t),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"^t must lie in \[0, 10\) .*from -?\d+ to \d+"):
            call()


def test_sample_refuses_a_latest_json_pointing_into_another_run(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 13: such a pointer made ``sample`` load another run's weights and write into its samples/."""
    import shutil

    victim, other = tmp_path / "victim", tmp_path / "other"
    shutil.copytree(trained_run, victim)
    shutil.copytree(trained_run, other)
    pointer = {"step": 1, "dir": "../../other/checkpoints/step_0000001"}
    (victim / "checkpoints" / "latest.json").write_text(json.dumps(pointer))
    line = one_error_line(
        main(["sample", "--checkpoint", str(victim), "--progress", "False"]), capsys.readouterr().err
    )
    assert "not a checkpoint folder inside" in line
    assert not (victim / "samples").exists() and not (other / "samples").exists()
