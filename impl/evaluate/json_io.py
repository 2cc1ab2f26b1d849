"""Atomic JSON output for evaluation reports."""

from __future__ import annotations

import json
import os
from typing import Any

from impl.data.writers import atomic_write

__all__ = ["write_json_atomic"]


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON (strict: NaN and infinities refused) to ``path`` atomically."""
    try:
        text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"obj must be JSON-able (dict, list, str, int, finite float, None): {err}") from err
    with atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))
