"""``iddpm stats REF --out ref_stats.npz``: the reference statistics FID, sFID, P/R and KID compare with."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from impl.commands import PROG


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.commands.evaluate import extractor_from_args
    from impl.evaluate.reference_stats import (
        images_sha256,
        load_reference_images,
        stats_from_features,
        write_stats,
    )

    out = Path(args.out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out folder {str(out.parent)!r} does not exist")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {args.out!r} exists; pass --overwrite to replace it")
    if out.suffix.lower() != ".npz":
        raise ValueError(f"--out must end in .npz; got {args.out!r}")
    images = load_reference_images(args.reference, args.image_size or None)
    extractor = extractor_from_args(args)
    stats = stats_from_features(extractor.extract(images), extractor.identity, images_sha256(images))
    write_stats(out, stats)
    print(f"{PROG} stats: {stats.num_images} images -> {out} ({extractor.identity})", file=sys.stderr)
    return 0
