"""A save keeps a loadable checkpoint at every instant (issue 12, item 3), and what loading trusts.

The kill test forks the test process once per file operation of a save: the child counts the calls of
``os.replace``, ``os.rename``, ``os.fsync``, ``os.mkdir``, ``os.unlink``, ``os.rmdir`` and ``shutil.rmtree``
and ends itself with ``os._exit`` (no cleanup, no ``finally``: a SIGKILL as far as the files can tell) at
call k, for k = 1, 2, … until a save completes without reaching k.  After each kill the parent loads the
run and must find the checkpoint that was the latest before the save, or the new one, bit for bit.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from impl.train.checkpoint import (
    TrainingCheckpoint,
    find_checkpoint_dir,
    list_checkpoints,
    load_training_checkpoint,
    save_training_checkpoint,
)
from impl.train.config import TrainConfig
from impl.train.errors import CheckpointError

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork")

KILLED, DONE, FAILED = 17, 0, 3
COUNTED = {
    os: ("replace", "rename", "fsync", "mkdir", "unlink", "rmdir"),
    shutil: ("rmtree",),
}


def checkpoint(step: int, version: float) -> TrainingCheckpoint:
    """A small checkpoint whose every tensor holds ``version`` (tells two saves of one step apart)."""
    state = {"w": torch.full((64,), version), "b": torch.full((3,), -version)}
    return TrainingCheckpoint(
        step=step,
        config=TrainConfig().to_dict(),
        model=dict(state),
        emas={0.9: {k: v + 1 for k, v in state.items()}},
        optimizer={"state": {0: {"exp_avg": torch.full((64,), version)}}, "param_groups": [{"lr": 0.1}]},
        sampler={"loss_history": torch.full((4, 2), version, dtype=torch.float64)},
    )


def run_killed_at(k: int, action: Callable[[], object]) -> int:
    """Fork; in the child run ``action`` with the k-th counted file operation replaced by ``os._exit``."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            calls = [0]
            for module, names in COUNTED.items():
                for name in names:
                    original = getattr(module, name)

                    def counted(*args: object, _original: object = original, **kwargs: object) -> object:
                        calls[0] += 1
                        if calls[0] == k:
                            os._exit(KILLED)
                        return _original(*args, **kwargs)  # type: ignore[operator]

                    setattr(module, name, counted)
            action()
            os._exit(DONE)
        except BaseException:
            os._exit(FAILED)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def version_of(run_dir: Path) -> tuple[int, float]:
    """(step, version) of the checkpoint a resume would load; fails unless it is complete and consistent."""
    ckpt = load_training_checkpoint(run_dir)
    version = float(ckpt.model["w"][0])
    assert torch.equal(ckpt.model["w"], torch.full((64,), version))
    assert torch.equal(ckpt.emas[0.9]["b"], torch.full((3,), 1 - version))
    assert ckpt.optimizer is not None and ckpt.sampler
    return ckpt.step, version


def kill_at_every_operation(
    tmp_path: Path, saved: list[TrainingCheckpoint], keep: int, new: TrainingCheckpoint
) -> int:
    """Kill ``save_training_checkpoint(new)`` over a run holding ``saved`` at each operation in turn;
    return the number of operations of the complete save."""
    template = tmp_path / "template"
    for ckpt in saved:
        save_training_checkpoint(template, ckpt, keep=keep)
    before = version_of(template)
    after = (new.step, float(new.model["w"][0]))
    for k in range(1, 200):
        run_dir = tmp_path / f"k{k}"
        shutil.copytree(template, run_dir)
        code = run_killed_at(k, functools.partial(save_training_checkpoint, run_dir, new, keep=keep))
        assert code in (KILLED, DONE), f"the save failed (exit {code}) instead of being killed at {k}"
        found = version_of(run_dir)
        if code == DONE:
            assert found == after
            assert len(list_checkpoints(run_dir / "checkpoints")) <= keep
            assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
            return k - 1
        assert found in (before, after), f"killed at operation {k}: loaded {found}"
        # the run goes on: the next save after the kill completes and cleans up what the kill left
        save_training_checkpoint(run_dir, checkpoint(new.step + 1, 9.0), keep=keep)
        assert version_of(run_dir) == (new.step + 1, 9.0)
        assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
        shutil.rmtree(run_dir)
    raise AssertionError("the save did not finish within 200 file operations")


def test_a_kill_at_any_operation_of_a_new_step_with_pruning_leaves_a_loadable_checkpoint(
    tmp_path: Path,
) -> None:
    operations = kill_at_every_operation(
        tmp_path, [checkpoint(1, 1.0), checkpoint(2, 2.0)], keep=2, new=checkpoint(3, 3.0)
    )
    assert operations >= 10  # files, folder renames, latest.json, the pruned step: every one was hit


def test_a_kill_at_any_operation_of_a_resave_of_the_latest_step_leaves_a_loadable_checkpoint(
    tmp_path: Path,
) -> None:
    """A run resumed from an earlier checkpoint saves a step that exists already (here with keep=1, so
    the old copy is the only checkpoint): the old copy must stay loadable until the new one is."""
    operations = kill_at_every_operation(tmp_path, [checkpoint(2, 2.0)], keep=1, new=checkpoint(2, 5.0))
    assert operations >= 10


def test_a_failed_save_removes_its_partial_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk in the middle of a save (item 8) leaves the previous checkpoint and nothing else."""
    save_training_checkpoint(tmp_path, checkpoint(1, 1.0))
    real_fsync = os.fsync
    calls = [0]

    def full_disk(fd: int) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_training_checkpoint(tmp_path, checkpoint(2, 2.0))
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest.json", "step_0000001"]
    assert version_of(tmp_path) == (1, 1.0)


@pytest.mark.parametrize("pointer", ["../../other/checkpoints/step_0000001", "/etc", "..", "step_1/../.."])
def test_latest_json_naming_a_folder_outside_the_run_is_refused(tmp_path: Path, pointer: str) -> None:
    """Item 13: ``latest.json`` is data, not a path to follow out of ``checkpoints/``."""
    other = tmp_path / "other"
    save_training_checkpoint(other, checkpoint(1, 7.0))
    run = tmp_path / "run"
    save_training_checkpoint(run, checkpoint(1, 1.0))
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"step": 1, "dir": pointer}))
    with pytest.raises(CheckpointError, match="not a checkpoint folder inside"):
        find_checkpoint_dir(run)


def test_a_corrupt_latest_checkpoint_names_the_previous_one(tmp_path: Path) -> None:
    """Item 18: the error says which earlier checkpoint can be resumed explicitly."""
    save_training_checkpoint(tmp_path, checkpoint(1, 1.0))
    latest = save_training_checkpoint(tmp_path, checkpoint(2, 2.0))
    (latest / "model.safetensors").write_bytes(b"\0" * 100)
    with pytest.raises(CheckpointError) as err:
        load_training_checkpoint(tmp_path)
    message = str(err.value)
    assert "corrupt" in message
    assert f"train --resume {tmp_path / 'checkpoints' / 'step_0000001'}" in message
    assert load_training_checkpoint(tmp_path / "checkpoints" / "step_0000001").step == 1


@pytest.mark.parametrize(
    ("where", "value"),
    [("model_flags.image_size", "abc"), ("model_flags.learn_sigma", 1), ("lr", "fast"), ("max_steps", 2.5)],
)
def test_a_wrongly_typed_state_json_value_is_a_checkpoint_error(
    tmp_path: Path, where: str, value: object
) -> None:
    """Item 10: ``image_size: "abc"`` names the file and the field instead of a TypeError later."""
    folder = save_training_checkpoint(tmp_path, checkpoint(1, 1.0))
    meta = json.loads((folder / "state.json").read_text())
    meta["config"]["model_flags"] = {"image_size": 8, "learn_sigma": True}
    target = meta["config"]
    *parents, name = where.split(".")
    for parent in parents:
        target = target[parent]
    target[name] = value
    (folder / "state.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=rf"state.json.*{name} must be"):
        load_training_checkpoint(tmp_path)


def test_a_resave_of_a_step_supersedes_the_earlier_save_and_keeps_the_older_steps(tmp_path: Path) -> None:
    """Resumed from step 1 while a (corrupt) step 2 exists: the new step 2 replaces it, step 1 stays."""
    save_training_checkpoint(tmp_path, checkpoint(1, 1.0), keep=2)
    old = save_training_checkpoint(tmp_path, checkpoint(2, 2.0), keep=2)
    (old / "model.safetensors").write_bytes(b"\0")
    new = save_training_checkpoint(tmp_path, checkpoint(2, 5.0), keep=2)
    assert new.name == "step_0000002.2"
    assert [p.name for _, p in list_checkpoints(tmp_path / "checkpoints")] == [
        "step_0000001",
        "step_0000002.2",
    ]
    assert version_of(tmp_path) == (2, 5.0)
    assert version_of(tmp_path / "checkpoints" / "step_0000001") == (1, 1.0)
