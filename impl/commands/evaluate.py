"""``iddpm evaluate``: sample-quality metrics of a samples ``.npz``."""

from __future__ import annotations

import argparse
from pathlib import Path

from impl.commands import common


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.data.npz import read_npz
    from impl.evaluate import digits_sample_quality

    path = Path(args.samples)
    if path.is_dir():
        raise ValueError(f"samples {args.samples!r} is a folder; give the .npz file that sample wrote")
    if not path.is_file():
        raise FileNotFoundError(f"samples file {args.samples!r} does not exist")
    common.check_output_folder(args.output)
    images, _ = read_npz(path)
    result = digits_sample_quality(images)
    result["samples"] = str(path)
    common.emit(result, args.output)
    return 0
