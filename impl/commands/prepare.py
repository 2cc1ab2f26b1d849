"""``iddpm prepare``: an image folder, ``.npz``, CIFAR-10 or downsampled ImageNet into training data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from impl.commands import PROG


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.data.prepare import prepare

    del explicit
    result = prepare(
        Path(args.source),
        Path(args.out),
        fmt=args.format,
        image_size=args.image_size,
        shard_size=args.shard_size,
        split=args.split,
        folder_labels=args.folder_labels,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    m = result.manifest
    what = "verified" if result.verified else "wrote"
    shape = "x".join(str(s) for s in m.image_shape)
    labels = f", {m.num_classes} classes" if m.num_classes is not None else ""
    print(
        f"{PROG}: {what} {result.out}: {m.count} images of {shape} as {m.format} "
        f"({len(m.files)} files{labels}); train with --data {result.out}",
        file=sys.stderr,
    )
    return 0
