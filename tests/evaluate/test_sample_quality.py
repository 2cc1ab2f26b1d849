"""Digits sample quality: the score formulas by hand, real digits far above noise, conversions, caching.

The thresholds below sit between the reference points measured in docs/data-and-evaluation.md (real
digits: score ~9, Fréchet ~0.2; noise: score ~2.6, Fréchet ~6.5), far from both, so the tests check
"clearly separates real digits from noise", not the exact values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import softmax

from impl.data import digits_split, load_digits_arrays
from impl.data.images import convert_channels, resize_square
from impl.evaluate import classifier_scores, digits_classifier, digits_sample_quality, to_digits_format
from impl.evaluate.calibration import held_out_halves_frechet
from testing.assertions import assert_close
from testing.tolerances import Evaluate, tolerance


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    images, _ = load_digits_arrays()
    return images[digits_split().held_out]


@pytest.fixture(scope="module")
def train_subset(held_out: np.ndarray) -> np.ndarray:
    images, _ = load_digits_arrays()
    train = images[digits_split().train]
    return train[np.random.default_rng(0).permutation(train.shape[0])[: held_out.shape[0]]]


@pytest.fixture(scope="module")
def noise(held_out: np.ndarray) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=held_out.shape, dtype=np.uint8)


def test_classifier_scores_by_hand() -> None:
    one_hot = classifier_scores(np.array([[1.0, 0.0], [0.0, 1.0]]))
    # marginal (1/2, 1/2); each KL = ln 2; score = 2; both classes predicted once
    assert one_hot == pytest.approx({"mean_confidence": 1.0, "class_balance": 1.0, "classifier_score": 2.0})
    flat = classifier_scores(np.array([[0.5, 0.5], [0.5, 0.5]]))
    assert flat == pytest.approx({"mean_confidence": 0.5, "class_balance": 0.0, "classifier_score": 1.0})
    soft = classifier_scores(np.array([[0.75, 0.25], [0.25, 0.75]]))
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert soft["classifier_score"] == pytest.approx(math.exp(kl))
    assert soft["mean_confidence"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="probability"):
        classifier_scores(np.array([[0.7, 0.7]]))


def test_classifier_is_cached_and_accurate() -> None:
    assert digits_classifier() is digits_classifier()
    assert digits_classifier().held_out_accuracy > 0.95


def test_features_are_the_fitted_hidden_layer(held_out: np.ndarray) -> None:
    """softmax(features · W2 + b2) must reproduce scikit-learn's own probabilities."""
    clf = digits_classifier()
    logits = clf.features(held_out[:50]) @ clf.estimator.coefs_[1] + clf.estimator.intercepts_[1]
    tol = tolerance(Evaluate.MLP_FORWARD)
    assert_close(softmax(logits, axis=1), clf.probabilities(held_out[:50]), tol=tol)


def test_real_digits_score_far_above_noise(train_subset: np.ndarray, noise: np.ndarray) -> None:
    real = digits_sample_quality(train_subset)
    fake = digits_sample_quality(noise)
    assert real["classifier_score"] > 8.0 and fake["classifier_score"] < 4.0
    assert real["mean_confidence"] > 0.9 and fake["mean_confidence"] < 0.8
    assert real["class_balance"] > 0.98
    assert real["frechet_distance"] < 1.0 and fake["frechet_distance"] > 4.0
    assert real["num_images"] == train_subset.shape[0]
    assert sum(real["predicted_class_counts"]) == real["num_images"]


def test_frechet_held_out_halves_small_noise_large(noise: np.ndarray) -> None:
    assert held_out_halves_frechet(0) < 1.0
    assert digits_sample_quality(noise)["frechet_distance"] > 4.0


def test_single_class_is_unbalanced(held_out: np.ndarray) -> None:
    _, labels = load_digits_arrays()
    sevens = held_out[labels[digits_split().held_out] == 7]
    result = digits_sample_quality(sevens)
    assert result["class_balance"] < 0.3 and result["classifier_score"] < 2.0
    assert result["frechet_distance"] > 4.0


def test_upscaled_rgb_digits_are_converted_back(held_out: np.ndarray) -> None:
    big = convert_channels(resize_square(held_out, 32), 3)
    small = to_digits_format(big)
    assert small.shape == held_out.shape
    # bilinear up then BOX down blurs a little: mean absolute change stays small (pixels 0..255)
    assert np.abs(small.astype(int) - held_out.astype(int)).mean() < 20
    result = digits_sample_quality(big)
    assert result["classifier_score"] > 7.0 and result["frechet_distance"] < 1.5


def test_bad_images_are_rejected(held_out: np.ndarray) -> None:
    with pytest.raises(ValueError, match="at least 8x8"):
        digits_sample_quality(np.zeros((4, 4, 4, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match="at least 2"):
        digits_sample_quality(held_out[:1])
    with pytest.raises(ValueError, match="uint8"):
        digits_sample_quality(held_out.astype(np.float32))


def test_reference_points_rank_real_digits_first() -> None:
    from impl.evaluate.calibration import digits_reference_points

    points = digits_reference_points()
    assert len(points) == 10
    real = points["train digits (unseen by the reference)"]["frechet_distance"]
    degraded = [v["frechet_distance"] for k, v in points.items() if "noise" in k or "blurred" in k]
    assert len(degraded) == 4 and real < min(degraded) / 10
