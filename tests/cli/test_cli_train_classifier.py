"""``iddpm train_classifier`` end to end on the digits: the run layout B reads (state.json rebuilds the
classifier, strict load, the logged held-out accuracies reproduced), exact resume, the refusals between
classifier and diffusion runs, bad input, and 2-process DDP."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import impl
from impl.cli import main
from impl.data import load_data
from impl.factory.classifier_run_flags import build_classifier, classifier_flag_defaults
from impl.runtime.seeding import STREAM_INIT, derive_seed
from impl.train.classifier_trainer import STREAM_HELD_OUT
from reference.classifier_training import binned_topk_accuracy, cross_entropy, timestep_quarter
from reference.process import q_sample
from reference.schedule import diffusion_tables, get_named_beta_schedule
from testing.assertions import assert_close
from testing.tolerances import Train, tolerance
from tests.cli.test_resume_signal_ddp import _env, _free_port
from tests.cli.tiny import tiny_train

TINY_CLASSIFIER = [
    "--classifier_width",
    "32",
    "--classifier_depth",
    "1",
    "--diffusion_steps",
    "20",
    "--batch_size",
    "8",
    "--val_samples",
    "24",
    "--log_interval",
    "2",
    "--progress",
    "False",
]


def tiny_classifier(out_dir: Path, *extra: str) -> list[str]:
    return ["train_classifier", "--out_dir", str(out_dir), *TINY_CLASSIFIER, *extra]


def _step_dir(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step_{step:07d}"


def _log(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_run_layout_rebuilds_the_classifier_and_reproduces_its_held_out_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(tiny_classifier(run, "--max_steps", "4", "--eval_interval", "2", "--ema_rate", "0.9")) == 0
    err = capsys.readouterr().err
    assert "step 2 held-out" in err and "step 4 held-out" in err and f"--classifier {run}" in err
    step_dir = _step_dir(run, 4)
    assert json.loads((run / "checkpoints" / "latest.json").read_text()) == {"step": 4, "dir": step_dir.name}
    assert {p.name for p in step_dir.iterdir()} >= {"model.safetensors", "ema_0.9.safetensors", "state.json"}
    state = json.loads((step_dir / "state.json").read_text())
    assert state["format_version"] == 1
    config = state["config"]
    assert config["kind"] == "classifier"
    flags = config["classifier_flags"]
    assert set(flags) == set(classifier_flag_defaults())
    assert (flags["image_size"], flags["in_channels"], flags["num_classes"]) == (8, 1, 10)
    assert config["model_flags"]["diffusion_steps"] == 20 and config["model_flags"]["image_size"] == 8
    # the contract: create_classifier(**classifier_flags) takes model.safetensors with strict keys
    weights = load_file(str(step_dir / "model.safetensors"))
    model = impl.create_classifier(**flags)
    model.load_state_dict(weights, strict=True)
    model.eval()
    torch.manual_seed(derive_seed(0, STREAM_INIT))
    init = build_classifier(flags).state_dict()
    assert any(not torch.equal(weights[k], init[k]) for k in weights)  # trained, not the initialisation
    loaded = impl.load_classifier(step_dir / "model.safetensors", **flags)
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 7, 19])
    with torch.no_grad():
        assert torch.equal(model(x, t), loaded(x, t))
    # …and it is the classifier that was evaluated: the logged accuracies per quarter, recomputed
    final = [r for r in _log(run) if "val_acc1" in r and r["step"] == 4]
    assert len(final) == 1
    _assert_reproduces(final[0], model, config)


def _quarter_timesteps(count: int, T: int, gen: torch.Generator) -> torch.Tensor:
    """docs/guidance.md's held-out t, written out by hand: for each quarter q = 0 … 3 of the t range in
    turn, ``count`` integers drawn uniformly from [⌈qT/4⌉, ⌈(q+1)T/4⌉) by the chunk's generator."""
    bounds = [math.ceil(q * T / 4) for q in range(5)]
    return torch.cat([torch.randint(bounds[q], bounds[q + 1], (count,), generator=gen) for q in range(4)])


def _assert_reproduces(record: dict[str, object], model: torch.nn.Module, config: dict[str, object]) -> None:
    """The held-out evaluation as docs/guidance.md states it, rebuilt without the trainer's helpers: t per
    quarter by hand, x_t = q_sample(x_0, t, ε) [S6] by the float64 oracle, the model called at the
    timesteps the U-Net gets (no respacing: τ(t) = t, times 1000/T as float32 with rescale_timesteps
    [S28]), and the oracle's accuracy [S58]."""
    model_flags: dict[str, Any] = dict(config["model_flags"])  # type: ignore[call-overload]
    assert not model_flags["timestep_respacing"]  # every step kept, so τ(t) is t (rescaled or not)
    T = int(model_flags["diffusion_steps"])
    rescale = 1000.0 / T if model_flags["rescale_timesteps"] else None
    tables = diffusion_tables(get_named_beta_schedule(model_flags["noise_schedule"], T))
    held = load_data("digits:held_out", image_size=8, class_cond=True, channels=1)
    count, batch = int(config["val_samples"]), int(config["batch_size"])  # type: ignore[call-overload]
    x_all = held.images[:count].transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1.0
    y_all = np.asarray(held.labels[:count], dtype=np.int64)
    logits, labels, steps = [], [], []
    gen = torch.Generator()
    with torch.no_grad():
        for chunk, lo in enumerate(range(0, count, batch)):
            x0, y = x_all[lo : lo + batch], y_all[lo : lo + batch]
            gen.manual_seed(derive_seed(int(config["seed"]), STREAM_HELD_OUT, chunk))  # type: ignore[call-overload]
            t = _quarter_timesteps(len(y), T, gen)
            x0 = np.tile(x0, (4, 1, 1, 1))  # quarter q's block is the chunk's images again
            noise = torch.randn(x0.shape, generator=gen).numpy().astype(np.float64)
            x_t = torch.from_numpy(q_sample(tables, x0, t.numpy(), noise).astype(np.float32))
            tau = t if rescale is None else t.to(torch.float32) * rescale
            logits.append(model(x_t, tau).numpy())
            labels.append(np.tile(y, 4))
            steps.append(t.numpy())
    z, y, t = (np.concatenate(v) for v in (logits, labels, steps))
    assert record["val_num_samples"] == 4 * count
    for k in (1, 5):
        expected = binned_topk_accuracy(z.astype(np.float64), y, t, T, k)
        np.testing.assert_array_equal([record[f"val_acc{k}_q{b}"] for b in range(4)], expected)
    # the losses are continuous in t and x_t, so they catch what a coarse accuracy may not
    losses, quarter = cross_entropy(z.astype(np.float64), y), timestep_quarter(t, T)
    expected_loss = [losses[quarter == b].mean() for b in range(4)]
    assert_close(
        [record[f"val_loss_q{b}"] for b in range(4)],
        expected_loss,
        tol=tolerance(Train.HELD_OUT_LOSS_REBUILT),
        label="held-out loss per quarter",
    )


def test_three_steps_resume_three_steps_equals_six_bit_for_bit(tmp_path: Path) -> None:
    extra = ["--ema_rate", "0.99", "--lr_anneal_steps", "6"]
    assert main(tiny_classifier(tmp_path / "straight", "--max_steps", "6", *extra)) == 0
    assert main(tiny_classifier(tmp_path / "split", "--max_steps", "3", *extra)) == 0
    resume = [
        "train_classifier",
        "--resume",
        str(tmp_path / "split"),
        "--max_steps",
        "6",
        "--progress",
        "False",
    ]
    assert main(resume) == 0
    for name in ("model", "ema_0.99", "optimizer"):
        a = load_file(str(_step_dir(tmp_path / "straight", 6) / f"{name}.safetensors"))
        b = load_file(str(_step_dir(tmp_path / "split", 6) / f"{name}.safetensors"))
        assert a.keys() == b.keys()
        assert not [k for k in a if not torch.equal(a[k], b[k])], name
    straight = [r for r in _log(tmp_path / "straight") if "val_acc1" in r]
    split = [r for r in _log(tmp_path / "split") if "val_acc1" in r]
    assert [r["step"] for r in split] == [3, 6] and straight[-1]["val_acc1"] == split[-1]["val_acc1"]


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_classifier_and_diffusion_runs_refuse_each_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classifier, model = tmp_path / "classifier", tmp_path / "model"
    assert main(tiny_classifier(classifier, "--max_steps", "1")) == 0
    assert main(tiny_train(str(model), "--max_steps", "1", "--num_grid_samples", "0")) == 0
    err = _error(capsys, ["train_classifier", "--resume", str(model), "--max_steps", "2"])
    assert "is a diffusion-model run" in err and "needs a classifier run" in err
    err = _error(capsys, ["train", "--resume", str(classifier), "--max_steps", "2"])
    assert "is a classifier run" in err and "train_classifier --resume" in err
    out = str(tmp_path / "s.npz")
    err = _error(capsys, ["sample", "--checkpoint", str(classifier), "--num_samples", "1", "--output", out])
    assert "is a classifier run" in err
    assert not Path(out).exists()
    # read_state_json checks the classifier flags' types like the model flags'
    state_path = _step_dir(classifier, 1) / "state.json"
    state = json.loads(state_path.read_text())
    state["config"]["classifier_flags"]["classifier_width"] = "wide"
    state_path.write_text(json.dumps(state))
    err = _error(capsys, ["train_classifier", "--resume", str(classifier), "--max_steps", "2"])
    assert "state.json" in err and "classifier_width must be int" in err


def test_bad_input_is_one_line_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, arr_0=np.zeros((4, 8, 8, 1), dtype=np.uint8))
    run = tmp_path / "run"
    err = _error(capsys, tiny_classifier(run, "--data", str(unlabelled)))
    assert "--data" in err and "label" in err
    err = _error(capsys, tiny_classifier(run, "--data", str(unlabelled), "--eval_interval", "2"))
    assert "--val_data" in err
    assert "--num_classes" in _error(capsys, tiny_classifier(run, "--num_classes", "5"))
    err = _error(capsys, tiny_classifier(run, "--val_data", str(unlabelled)))
    assert f"--val_data {str(unlabelled)!r} has no labels" in err and "class_cond" not in err
    assert "--val_samples must be a positive integer" in _error(
        capsys, tiny_classifier(run, "--val_samples", "0")
    )
    assert "--eval_interval must be >= 0" in _error(capsys, tiny_classifier(run, "--eval_interval", "-1"))
    err = _error(capsys, tiny_classifier(run, "--classifier_pool", "max"))
    assert "--classifier_pool: invalid choice: 'max'" in err and "spatial_v2" in err
    assert "--lr must be a number, got 'fast'" in _error(capsys, tiny_classifier(run, "--lr", "fast"))
    for flag in ("--classifier_width", "--classifier_depth"):
        assert f"{flag} must be a positive integer, got 0" in _error(capsys, tiny_classifier(run, flag, "0"))
    err = _error(capsys, tiny_classifier(run, "--classifier_attention_resolutions", "32,16,8"))
    assert "attention" in err
    assert not run.exists()  # nothing was written by a refused run
    assert main(tiny_classifier(run, "--max_steps", "1")) == 0
    assert "--out_dir" in _error(capsys, tiny_classifier(run, "--max_steps", "1"))
    resume = ["train_classifier", "--resume", str(run), "--max_steps", "2", "--lr_anneal_steps", "2"]
    assert "--classifier_width" in _error(capsys, [*resume, "--classifier_width", "64"])
    assert "--diffusion_steps" in _error(capsys, [*resume, "--diffusion_steps", "50"])


@pytest.mark.slow
@pytest.mark.distributed
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    args = ["--max_steps", "1", "--lr", "1e-2", "--lr_anneal_steps", "0", "--device", "cpu"]
    assert main(tiny_classifier(tmp_path / "one", *args)) == 0
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "impl.cli",
        *tiny_classifier(tmp_path / "two", *args),
    ]
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    one = load_file(str(_step_dir(tmp_path / "one", 1) / "model.safetensors"))
    two = load_file(str(_step_dir(tmp_path / "two", 1) / "model.safetensors"))
    flags = json.loads((tmp_path / "one" / "config.json").read_text())["classifier_flags"]
    torch.manual_seed(derive_seed(0, STREAM_INIT))
    init = build_classifier(flags).state_dict()
    moved = [k for k in one if not torch.equal(one[k], init[k])]
    assert moved and all(not torch.equal(two[k], init[k]) for k in moved)  # both trained a step
    # the averaged gradients: after one step AdamW's first moment is (1 − β1)·g, equal up to the
    # all-reduce's regrouping.  (The weights after one step, lr·g/(|g| + 1e-8), amplify that rounding
    # without bound where |g| is near 1e-8, as in a zero-initialised output conv: not compared.)
    name = "optimizer.safetensors"
    m_one = load_file(str(_step_dir(tmp_path / "one", 1) / name))
    m_two = load_file(str(_step_dir(tmp_path / "two", 1) / name))
    grad_tol = tolerance(Train.DDP_GRAD)
    firsts = [k for k in m_one if k.endswith("exp_avg")]
    assert len(firsts) == len(one)
    for key in firsts:
        scale = float(m_one[key].abs().max())
        assert float((m_two[key] - m_one[key]).abs().max()) <= grad_tol.atol * scale, key
    # the held-out rows were split across the ranks and summed once: every row counted, logged by rank 0
    val_one = [r for r in _log(tmp_path / "one") if "val_acc1" in r]
    val_two = [r for r in _log(tmp_path / "two") if "val_acc1" in r]
    assert len(val_two) == len(val_one) == 1
    assert val_two[0]["val_num_samples"] == val_one[0]["val_num_samples"] == 4 * 24
