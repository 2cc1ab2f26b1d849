"""The one atomic writer (issue 11, item 5; issue 12, items 8 and 17) and the strict JSON writer."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from impl.atomic import OutputPathError, atomic_write, json_text, write_json

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def umask() -> Iterator[None]:
    """Run under umask 027 (group read, no world access), restoring the process's umask after."""
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_file_mode_honours_the_umask(tmp_path: Path, umask: None) -> None:
    """Item 17: 0o666 minus the umask, as ``open(path, "w")`` gives, not mkstemp's 0600."""
    path = atomic_write(tmp_path / "a.bin", b"x")
    with (tmp_path / "plain.txt").open("w") as handle:
        handle.write("x")
    assert mode(path) == 0o640 == mode(tmp_path / "plain.txt")
    os.umask(0o002)
    assert mode(atomic_write(tmp_path / "b.bin", b"x")) == 0o664


def test_the_file_and_its_folder_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    atomic_write(tmp_path / "a.bin", lambda handle: handle.write(b"abc"))
    assert synced == ["file", "dir"]
    assert (tmp_path / "a.bin").read_bytes() == b"abc"


def test_a_full_disk_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 8: ENOSPC while writing or syncing removes the temporary and keeps the previous bytes."""
    path = atomic_write(tmp_path / "a.bin", b"old")

    def half_written(handle: IO[bytes]) -> None:
        handle.write(b"new new new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, half_written)

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_folder_or_a_missing_folder_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="is a folder"):
        atomic_write(tmp_path, b"x")
    with pytest.raises(OutputPathError, match="does not exist"):
        atomic_write(tmp_path / "no" / "a.bin", b"x")
    assert list(tmp_path.iterdir()) == []


def test_json_is_strict_sorted_and_names_where_a_nan_sits(tmp_path: Path) -> None:
    path = write_json(tmp_path / "r.json", {"b": [1, 2.5, None], "a": "x"})
    assert path.read_text() == '{\n  "a": "x",\n  "b": [\n    1,\n    2.5,\n    null\n  ]\n}\n'
    for bad, where in (({"a": {"b": [0.0, float("nan")]}}, "a.b[1]"), ({"x": float("inf")}, "x")):
        with pytest.raises(ValueError, match=re.escape(where) + " is not a finite number"):
            write_json(path, bad)
    with pytest.raises(ValueError, match="JSON-able"):
        json_text({"a": object()})
    assert json.loads(path.read_text()) == {"a": "x", "b": [1, 2.5, None]}


# Modules that stage whole folders and rename them into place (files inside are written normally, or with
# atomic_write): a training checkpoint, a run directory being replaced, a prepared data set, the best/
# checkpoint of --eval_interval, a sample run's trajectory strips.  They may make temporary folders and
# rename folders, nothing else.
FOLDER_STAGING = frozenset(
    {
        "impl/train/checkpoint.py",
        "impl/train/run.py",
        "impl/data/prepare.py",
        "impl/train/sample_eval.py",
        "impl/commands/trajectory.py",
    }
)


def test_every_writer_of_the_library_goes_through_atomic_write() -> None:
    """No module but ``impl/atomic.py`` creates temporary files or renames files over others; the folder
    staging modules make temporary folders (``mkdtemp``) and rename folders only."""
    offenders = []
    for path in sorted((REPO / "impl").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text()
        if rel == "impl/atomic.py":
            continue
        staging = rel in FOLDER_STAGING
        files_text = text.replace("tempfile.mkdtemp(", "").replace("import tempfile", "") if staging else text
        if re.search(r"\btempfile\b|\bmkstemp\b|np\.savez\(\s*(path|str)|save_file\(", files_text):
            offenders.append(rel)
        if "os.replace(" in text and not staging:
            offenders.append(rel)
    assert offenders == []


def test_the_data_writers_honour_the_umask(tmp_path: Path, umask: None) -> None:
    from impl.data import save_image_grid, save_npz_atomic
    from impl.nn import save_checkpoint

    images = np.zeros((2, 4, 4, 1), dtype=np.uint8)
    save_npz_atomic(tmp_path / "s.npz", images)
    save_image_grid(tmp_path / "g.png", images)
    import torch

    save_checkpoint({"w": torch.zeros(2)}, tmp_path / "m.safetensors")
    save_checkpoint({"w": torch.zeros(2)}, tmp_path / "m.pt")
    assert {p.name: mode(p) for p in tmp_path.iterdir()} == dict.fromkeys(
        ["s.npz", "g.png", "m.safetensors", "m.pt"], 0o640
    )
