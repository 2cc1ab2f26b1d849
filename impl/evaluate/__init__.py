"""impl.evaluate: the NLL bound in bits/dim, the Inception metrics (FID, sFID, IS, precision/recall, KID)
and the digits sample-quality metrics."""

from impl.atomic import write_json as write_json_atomic
from impl.evaluate.digits_classifier import DigitsClassifier, digits_classifier, to_digits_format
from impl.evaluate.feature_metrics import (
    inception_score,
    kernel_inception_distance,
    kid_subset_indices,
    knn_squared_radii,
    precision_recall,
)
from impl.evaluate.frechet import frechet_distance, gaussian_stats
from impl.evaluate.inception import InceptionExtractor, InceptionFeatures, random_inception_state_dict
from impl.evaluate.inception_report import parse_metrics, sample_quality_report
from impl.evaluate.inception_weights import MetricsUnavailableError, resolve_weights_path
from impl.evaluate.nll import nll_bound, summarize_bpd_terms
from impl.evaluate.reference_stats import ReferenceStats, read_stats, reference_statistics, write_stats
from impl.evaluate.sample_quality import classifier_scores, digits_sample_quality

__all__ = [
    "DigitsClassifier",
    "InceptionExtractor",
    "InceptionFeatures",
    "MetricsUnavailableError",
    "ReferenceStats",
    "classifier_scores",
    "digits_classifier",
    "digits_sample_quality",
    "frechet_distance",
    "gaussian_stats",
    "inception_score",
    "kernel_inception_distance",
    "kid_subset_indices",
    "knn_squared_radii",
    "nll_bound",
    "parse_metrics",
    "precision_recall",
    "random_inception_state_dict",
    "read_stats",
    "reference_statistics",
    "resolve_weights_path",
    "sample_quality_report",
    "summarize_bpd_terms",
    "to_digits_format",
    "write_json_atomic",
    "write_stats",
]
