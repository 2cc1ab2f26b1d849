"""The one atomic file writer of the library, and its strict JSON writer.

:func:`atomic_write` writes a temporary sibling of the target (same folder, so the rename cannot cross a
file system), flushes and fsyncs it, renames it over the target with ``os.replace`` and fsyncs the folder,
so that after a crash the target holds either the old bytes or the new ones, never a mix, and after the
call returns the new bytes survive a power loss.  The temporary is removed on any failure (a full disk, a
serialisation error, Ctrl-C), so nothing is left behind but what was there before.

The file is created with mode ``0o666`` minus the process umask, exactly as ``open(path, "w")`` would
(``tempfile.mkstemp`` would make it 0600 whatever the umask).

This module is a leaf: it imports nothing from ``impl``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "FILE_MODE",
    "OutputPathError",
    "atomic_write",
    "fsync_dir",
    "json_text",
    "temporary_name",
    "write_json",
]

#: Mode bits asked for at creation; the umask takes its bits away (0o644 under the usual umask 022).
FILE_MODE = 0o666


class OutputPathError(ValueError):
    """An output path that cannot be written: its folder is missing, or it names a folder."""


#: The content of a write: the bytes themselves, or a function that writes them into a binary file.
Content = bytes | Callable[[IO[bytes]], None]


def temporary_name(target: Path) -> Path:
    """A fresh hidden sibling ``.<name>.<pid>.<random>.tmp`` of ``target`` (readers skip dot-files)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename or a new entry in ``folder`` durable (fsync of the folder itself).

    Where a folder cannot be opened (Windows) or its file system does not sync folders (``EINVAL``), there
    is nothing to sync and this returns; any other error (``EIO``, ``ENOSPC``) is raised.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except (PermissionError, IsADirectoryError):
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], content: Content) -> Path:
    """Replace ``path`` by ``content`` atomically and durably; returns ``path`` as a :class:`Path`.

    ``content`` is ``bytes`` or a callable that writes into the binary file it is given (``np.savez``,
    ``torch.save``, ``PIL.Image.save``).  The folder must exist: a missing folder raises
    :class:`OutputPathError` naming it, and so does a ``path`` that is a folder; nothing is written then.
    On any failure the temporary file is removed and the old ``path`` is untouched.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputPathError(f"path {str(target)!r} is a folder; give a file name inside it")
    if not target.parent.is_dir():
        raise OutputPathError(f"path {str(target)!r}: its folder {str(target.parent)!r} does not exist")
    tmp = temporary_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(content, bytes):
                handle.write(content)
            else:
                content(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target


def _first_non_finite(obj: Any, where: str = "") -> str | None:
    """The JSON path (``a.b[2]``) of the first NaN or infinity inside ``obj``, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "(the value itself)"
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _first_non_finite(value, f"{where}.{key}" if where else str(key))
            if found is not None:
                return found
    if isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            found = _first_non_finite(value, f"{where}[{i}]")
            if found is not None:
                return found
    return None


def json_text(obj: Any) -> str:
    """``obj`` as strict JSON: indented, keys sorted, a final newline.

    NaN and infinities are refused (``ValueError`` naming where the first one sits), since ``NaN`` is not
    JSON and other readers reject it; write ``None`` for a value that is not there.
    """
    bad = _first_non_finite(obj)
    if bad is not None:
        raise ValueError(f"obj: {bad} is not a finite number; JSON has no NaN or infinity (use None)")
    try:
        return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"obj must be JSON-able (dict, list, str, int, finite float, None): {err}") from err


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as strict JSON (:func:`json_text`) to ``path`` with :func:`atomic_write`."""
    return atomic_write(path, json_text(obj).encode("utf-8"))
