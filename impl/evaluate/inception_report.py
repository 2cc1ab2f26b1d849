"""The Inception-metric report of a sample batch against reference statistics: FID, sFID, IS, P/R, KID.

``sample_quality_report(sample_features, reference, metrics)`` returns a JSON-able dict with the keys
``fid, sfid, inception_score, inception_score_std, precision, recall, kid, kid_std, num_samples,
num_reference, feature_extractor`` (a metric not asked for is ``None``) and ``warnings``, a list of
sentences about sample counts too small for a trustworthy number.

Counts (the paper's protocol is 50,000 samples; see docs/evaluation.md):
- FID/sFID need 2 images; fewer samples than feature dimensions (2048, 2023) leave the covariance
  rank-deficient and bias the distance upward: a warning, compare only equal counts;
- IS needs at least one image per split (10): otherwise refused;
- precision/recall need k + 1 = 4 images in each set: otherwise refused;
- KID uses subsets of ``min(1000, samples, reference)`` rows (a warning when below 1000); fewer than 2:
  refused.
"""

from __future__ import annotations

from typing import Any

from impl.evaluate.feature_metrics import inception_score, kernel_inception_distance, precision_recall
from impl.evaluate.frechet import frechet_distance, gaussian_stats
from impl.evaluate.inception import InceptionFeatures
from impl.evaluate.reference_stats import ReferenceStats

__all__ = [
    "INCEPTION_METRICS",
    "REPORT_KEYS",
    "format_report_table",
    "needs_reference",
    "parse_metrics",
    "sample_quality_report",
]

INCEPTION_METRICS: tuple[str, ...] = ("fid", "sfid", "is", "prc", "kid")
ALL_METRICS: tuple[str, ...] = (*INCEPTION_METRICS, "digits")
REPORT_KEYS: tuple[str, ...] = (
    "fid",
    "sfid",
    "inception_score",
    "inception_score_std",
    "precision",
    "recall",
    "kid",
    "kid_std",
    "num_samples",
    "num_reference",
    "feature_extractor",
)
IS_SPLITS = 10
PRC_K = 3
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def parse_metrics(spec: str) -> tuple[str, ...]:
    """``"fid,sfid"`` → ``("fid", "sfid")``; names from ``fid, sfid, is, prc, kid`` or ``digits`` alone."""
    names = tuple(dict.fromkeys(p.strip().lower() for p in spec.split(",") if p.strip()))
    if not names:
        raise ValueError(f"metrics must name at least one of {', '.join(ALL_METRICS)}; got {spec!r}")
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown:
        raise ValueError(f"metrics: unknown {', '.join(unknown)}; allowed: {', '.join(ALL_METRICS)}")
    if "digits" in names and len(names) > 1:
        raise ValueError("metrics 'digits' cannot be combined with the Inception metrics; ask for one kind")
    return names


def needs_reference(metrics: tuple[str, ...]) -> bool:
    """Every Inception metric but the Inception Score compares against a reference."""
    return any(m in ("fid", "sfid", "prc", "kid") for m in metrics)


def sample_quality_report(
    samples: InceptionFeatures,
    reference: ReferenceStats | None,
    metrics: tuple[str, ...],
    *,
    feature_extractor: str,
    kid_seed: int = 0,
) -> dict[str, Any]:
    """Compute ``metrics`` of the sample features against ``reference`` (see the module docstring)."""
    if needs_reference(metrics) and reference is None:
        raise ValueError(f"metrics {', '.join(metrics)} need --reference (reference images or statistics)")
    n = int(samples.pool.shape[0])
    report: dict[str, Any] = dict.fromkeys(REPORT_KEYS)
    report.update(
        num_samples=n,
        num_reference=None if reference is None else reference.num_images,
        feature_extractor=feature_extractor,
    )
    notes: list[str] = []
    if reference is not None and ("fid" in metrics or "sfid" in metrics):
        if n < 2:
            raise ValueError(f"FID needs at least 2 samples; got {n}")
        if "fid" in metrics:
            report["fid"] = frechet_distance(*gaussian_stats(samples.pool), reference.mu, reference.sigma)
        if "sfid" in metrics:
            mu_s, sigma_s = gaussian_stats(samples.spatial)
            report["sfid"] = frechet_distance(mu_s, sigma_s, reference.mu_spatial, reference.sigma_spatial)
        dims = samples.pool.shape[1]
        if min(n, reference.num_images) < dims:
            notes.append(
                f"FID/sFID from {min(n, reference.num_images)} images (< {dims} feature dimensions): the "
                "covariance is rank-deficient and the distance biased upward; compare only equal counts "
                "(the paper uses 50,000 samples)"
            )
    if "is" in metrics:
        if n < IS_SPLITS:
            raise ValueError(
                f"the Inception Score needs at least {IS_SPLITS} samples (one per split); got {n}"
            )
        report["inception_score"], report["inception_score_std"] = inception_score(
            samples.probabilities(), splits=IS_SPLITS
        )
    if reference is not None and "prc" in metrics:
        fewest = min(n, reference.num_images)
        if fewest < PRC_K + 1:
            raise ValueError(
                f"precision/recall need at least k + 1 = {PRC_K + 1} images per set; got {fewest}"
            )
        report["precision"], report["recall"] = precision_recall(
            reference.features.astype("float64"), samples.pool, k=PRC_K
        )
    if reference is not None and "kid" in metrics:
        size = min(KID_SUBSET_SIZE, n, reference.num_images)
        if size < 2:
            raise ValueError(f"KID needs at least 2 images per set; got {size}")
        if size < KID_SUBSET_SIZE:
            notes.append(f"KID subsets of {size} images (fewer than the usual {KID_SUBSET_SIZE})")
        report["kid"], report["kid_std"] = kernel_inception_distance(
            reference.features.astype("float64"),
            samples.pool,
            subsets=KID_SUBSETS,
            subset_size=size,
            seed=kid_seed,
        )
        report["kid_subset_size"] = size
    report["warnings"] = notes
    return report


def format_report_table(report: dict[str, Any]) -> str:
    """A two-column plain-text table of the report's numbers (metrics not computed are left out)."""
    rows = [(k, report[k]) for k in REPORT_KEYS if report.get(k) is not None]
    width = max(len(k) for k, _ in rows)
    lines = []
    for key, value in rows:
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        lines.append(f"{key.ljust(width)}  {text}")
    return "\n".join(lines)
