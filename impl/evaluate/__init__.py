"""impl.evaluate: the NLL bound in bits/dim and the digits sample-quality metrics."""

from impl.atomic import write_json as write_json_atomic
from impl.evaluate.digits_classifier import DigitsClassifier, digits_classifier, to_digits_format
from impl.evaluate.frechet import frechet_distance, gaussian_stats
from impl.evaluate.nll import nll_bound, summarize_bpd_terms
from impl.evaluate.sample_quality import classifier_scores, digits_sample_quality

__all__ = [
    "DigitsClassifier",
    "classifier_scores",
    "digits_classifier",
    "digits_sample_quality",
    "frechet_distance",
    "gaussian_stats",
    "nll_bound",
    "summarize_bpd_terms",
    "to_digits_format",
    "write_json_atomic",
]
