"""``iddpm train --eval_interval``: FID of EMA samples logged during training, the best checkpoint kept."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from impl.cli import main
from impl.data import load_data
from impl.data.writers import save_npz_atomic
from impl.train.checkpoint import find_checkpoint_dir, load_training_checkpoint

TINY = [
    "--num_channels", "32", "--num_res_blocks", "1", "--attention_resolutions", "", "--diffusion_steps", "20",
    "--batch_size", "8", "--log_interval", "2", "--num_grid_samples", "0", "--progress", "False",
    "--ema_rate", "0.9999", "--grid_respacing", "5",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("torch_fidelity") is None, reason="the metrics extra is not installed"
)
def test_eval_during_training_logs_fid_and_keeps_the_best(
    inception_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "reference.npz"
    save_npz_atomic(reference, load_data("digits:held_out").images[:10])
    run = tmp_path / "run"
    argv = [
        "train", "--out_dir", str(run), *TINY, "--max_steps", "4",
        "--eval_interval", "2", "--eval_samples", "10", "--eval_reference", str(reference),
        "--eval_inception_weights", str(inception_weights),
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval_fid" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(r["eval_num_samples"] == 10 and r["eval_fid"] > 0 for r in evals)
    best = json.loads((run / "best" / "best.json").read_text())
    best_record = min(evals, key=lambda r: r["eval_fid"])
    assert best == {"step": best_record["step"], "fid": best_record["eval_fid"]}
    assert find_checkpoint_dir(run / "best") == run / "best"
    assert load_training_checkpoint(run / "best").step == best["step"]
    assert not [p.name for p in run.iterdir() if p.name.startswith(".best")]


def test_eval_flags_are_checked_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    code = main(["train", "--out_dir", str(run), *TINY, "--max_steps", "2", "--eval_interval", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "eval_reference" in err and len(err.strip().splitlines()) == 1
    code = main(
        ["train", "--out_dir", str(run), *TINY, "--max_steps", "2", "--eval_interval", "2",
         "--eval_reference", "digits:held_out", "--eval_metrics", "fid,digits"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "eval_metrics" in err
