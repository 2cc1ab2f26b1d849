"""Files named .npz that numpy cannot read as an .npz archive, for the one-line-error tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def unreadable_npz(path: Path, kind: str) -> Path:
    """A file named .npz that numpy cannot read as one: text, an object array, a cut-off zip, a lone .npy."""
    if kind == "text":
        path.write_text("not an archive\n")
    elif kind == "object":
        np.savez(path, arr_0=np.array([{"pixels": 1}], dtype=object))
    elif kind == "truncated":
        np.savez(path, arr_0=np.zeros((1, 8, 8, 1), np.uint8))
        path.write_bytes(path.read_bytes()[:100])
    else:
        with path.open("wb") as f:
            np.save(f, np.zeros((1, 8, 8, 1), np.uint8))
    return path
