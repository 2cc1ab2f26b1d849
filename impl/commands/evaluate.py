"""``iddpm evaluate SAMPLES [--reference REF] [--metrics …]``: sample quality of a samples batch.

Inception metrics (FID, sFID, IS, precision/recall, KID; ``impl.evaluate.inception_report``) print a table
on stdout and write the JSON report to ``--output``.  ``--metrics digits`` (the default for 8×8 greyscale
samples) prints the digits classifier's JSON as before; asked of other images it refuses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from impl.commands import PROG, common

DIGITS_SHAPE = (8, 8, 1)


def _default_metrics(images: Any, reference: str) -> str:
    if tuple(images.shape[1:]) == DIGITS_SHAPE and not reference:
        return "digits"
    return "fid,sfid,is,prc,kid" if reference else "is"


def _digits(images: Any, path: Path, output: str) -> int:
    from impl.evaluate import digits_sample_quality

    if tuple(images.shape[1:]) != DIGITS_SHAPE:
        raise ValueError(
            f"--metrics digits scores 8x8 greyscale digits only; the samples are "
            f"{'x'.join(map(str, images.shape[1:]))}: use --metrics fid,sfid,is,prc,kid with --reference"
        )
    result = digits_sample_quality(images)
    result["samples"] = str(path)
    common.emit(result, output)
    return 0


def extractor_from_args(args: argparse.Namespace) -> Any:
    from impl.evaluate import InceptionExtractor

    return InceptionExtractor(
        args.inception_weights or None,
        device=common.device(args.device),
        batch_size=args.batch_size,
        progress=args.progress,
    )


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.data.npz import read_npz
    from impl.evaluate import parse_metrics, reference_statistics, sample_quality_report, write_json_atomic
    from impl.evaluate.inception_report import format_report_table, needs_reference

    path = Path(args.samples)
    if path.is_dir():
        raise ValueError(f"samples {args.samples!r} is a folder; give the .npz file that sample wrote")
    if not path.is_file():
        raise FileNotFoundError(f"samples file {args.samples!r} does not exist")
    common.check_output_folder(args.output)
    images, _ = read_npz(path)
    metrics = parse_metrics(args.metrics or _default_metrics(images, args.reference))
    if metrics == ("digits",):
        return _digits(images, path, args.output)
    if needs_reference(metrics) and not args.reference:
        raise ValueError(f"--metrics {','.join(metrics)} needs --reference (images or an `iddpm stats` file)")
    extractor = extractor_from_args(args)
    reference = None
    if args.reference:
        size = int(images.shape[1]) if Path(args.reference).is_dir() else None  # folders need a size
        reference, source = reference_statistics(args.reference, extractor, image_size=size)
        print(
            f"{PROG} evaluate: reference statistics {source} ({reference.num_images} images)", file=sys.stderr
        )
    report = sample_quality_report(
        extractor.extract(images), reference, metrics, feature_extractor=extractor.identity
    )
    report["samples"] = str(path)
    report["reference"] = args.reference or None
    for note in report["warnings"]:
        print(f"{PROG} evaluate: warning: {note}", file=sys.stderr)
    print(format_report_table(report))
    if args.output:
        write_json_atomic(args.output, report)
    return 0
