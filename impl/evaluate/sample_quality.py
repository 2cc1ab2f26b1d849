"""Sample quality of generated digits, judged by the digits classifier (``impl.evaluate.digits_classifier``).

- ``mean_confidence``: mean over images of ``max_k p(k | x)`` (1 = every image is a confident digit).
- ``class_balance``: entropy of the histogram of predicted classes divided by ``ln 10`` (1 = all ten digits
  equally often, 0 = a single digit).
- ``classifier_score``: the Inception-Score formula with this classifier, ``exp(E_x KL(p(y|x) ‖ p(y)))`` with
  ``p(y) = E_x p(y|x)``; between 1 and 10 (10 = confident and balanced).
- ``frechet_distance``: Fréchet distance between Gaussians fitted to the classifier's hidden features of the
  images and of the held-out digits (``digits_split(0).held_out``, 359 digits); 0 is best.  With few images
  it is biased upwards (covariance estimated from few rows), so compare runs with equal image counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from impl.evaluate.digits_classifier import digits_classifier
from impl.evaluate.frechet import frechet_distance, gaussian_stats

__all__ = ["classifier_scores", "digits_sample_quality"]


def classifier_scores(probs: NDArray[np.float64]) -> dict[str, float]:
    """Confidence ``E max_k p``, balance ``H(hist)/ln K``, score ``exp(E KL(p(y|x) ‖ p(y)))`` from probs."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise ValueError(f"probs must have shape (N, K) with N >= 1, K >= 2; got {p.shape}")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-6):
        raise ValueError("probs rows must be probability vectors (non-negative, summing to 1)")
    n, k = p.shape
    marginal = p.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(marginal)), 0.0)
    mean_kl = float(terms.sum(axis=1).mean())
    hist = np.bincount(p.argmax(axis=1), minlength=k) / n
    nonzero = hist[hist > 0]
    entropy = max(0.0, float(-(nonzero * np.log(nonzero)).sum()))
    return {
        "mean_confidence": float(p.max(axis=1).mean()),
        "class_balance": entropy / float(np.log(k)),
        "classifier_score": float(np.exp(mean_kl)),
    }


def digits_sample_quality(images_uint8_nhwc: NDArray[np.uint8]) -> dict[str, Any]:
    """Classifier score, confidence, class balance and Fréchet distance of uint8 NHWC digit images.

    Images other than 8x8 greyscale are converted (luma, centre crop, BOX downsampling to 8x8).  At least
    2 images are needed (the Fréchet distance needs a covariance).  Returns a JSON-able dict.
    """
    classifier = digits_classifier()
    features = classifier.features(images_uint8_nhwc)
    if features.shape[0] < 2:
        raise ValueError(f"images_uint8_nhwc must hold at least 2 images; got {features.shape[0]}")
    probs = classifier.probabilities(images_uint8_nhwc)
    mu, sigma = gaussian_stats(features)
    result: dict[str, Any] = dict(classifier_scores(probs))
    reference = (classifier.held_out_mu, classifier.held_out_sigma)
    result["frechet_distance"] = frechet_distance(mu, sigma, *reference)
    result["num_images"] = int(features.shape[0])
    result["predicted_class_counts"] = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]).tolist()
    return result
