"""The digits classifier behind the sample-quality metrics, trained once per process on the train digits.

A scikit-learn ``MLPClassifier``: 64 inputs (the 8x8 pixels divided by 255), one hidden layer of 64 ``tanh``
units, softmax over the 10 digits; L-BFGS, L2 penalty ``alpha = 1.0`` (a strong penalty keeps the
probabilities from saturating on non-digits), ``random_state = 0``.  It is fitted on ``digits_split(0).train``
(1,438 digits, about 1 s on one core) and cached in memory.  Its features are the 64 hidden activations
``h = tanh(x W + b)``, computed here from the fitted weights.

Images other than 8x8 greyscale are first converted: RGB -> ITU-R 601-2 luma, then centre-crop to a square
and BOX (area-average) downsampling to 8x8 (``impl.data.images``).  Images smaller than 8x8 are refused.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from impl.data.digits import digits_split, load_digits_arrays
from impl.data.images import check_images, convert_channels, resize_square
from impl.evaluate.frechet import gaussian_stats

__all__ = [
    "DIGITS_CLASSIFIER_CONFIG",
    "DigitsClassifier",
    "digits_classifier",
    "to_digits_format",
]

DIGITS_SIZE = 8
DIGITS_CLASSIFIER_CONFIG: dict[str, Any] = {
    "hidden_layer_sizes": (64,),
    "activation": "tanh",
    "solver": "lbfgs",
    "alpha": 1.0,
    "max_iter": 2000,
    "random_state": 0,
}


def to_digits_format(images_uint8_nhwc: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Convert uint8 NHWC images to 8x8 greyscale: luma of RGB, centre crop, BOX downsampling."""
    images = check_images(images_uint8_nhwc, "images_uint8_nhwc")
    if min(images.shape[1], images.shape[2]) < DIGITS_SIZE:
        raise ValueError(f"images_uint8_nhwc must be at least 8x8; got shape {images.shape}")
    images = convert_channels(images, 1)
    if images.shape[1:3] != (DIGITS_SIZE, DIGITS_SIZE):
        images = resize_square(images, DIGITS_SIZE)
    return images


def classifier_input(images_uint8_nhwc: NDArray[np.uint8]) -> NDArray[np.float64]:
    """The classifier's input rows: ``to_digits_format(images)`` flattened to (N, 64), divided by 255."""
    digits = to_digits_format(images_uint8_nhwc)
    return digits.reshape(digits.shape[0], DIGITS_SIZE * DIGITS_SIZE).astype(np.float64) / 255.0


@dataclass(frozen=True)
class DigitsClassifier:
    """The fitted classifier, its hidden layer, and the held-out digits' feature statistics."""

    estimator: Any
    hidden_weight: NDArray[np.float64]
    hidden_bias: NDArray[np.float64]
    held_out_mu: NDArray[np.float64]
    held_out_sigma: NDArray[np.float64]
    held_out_accuracy: float

    def features(self, images_uint8_nhwc: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Hidden activations ``tanh(x W + b)``, shape (N, 64)."""
        x = classifier_input(images_uint8_nhwc)
        return np.tanh(x @ self.hidden_weight + self.hidden_bias)

    def probabilities(self, images_uint8_nhwc: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Class probabilities ``p(y | x)``, shape (N, 10)."""
        probs = self.estimator.predict_proba(classifier_input(images_uint8_nhwc))
        return np.asarray(probs, dtype=np.float64)


@functools.lru_cache(maxsize=1)
def digits_classifier() -> DigitsClassifier:
    """Fit (once per process) and return the digits classifier; see the module docstring."""
    from sklearn.neural_network import MLPClassifier

    images, labels = load_digits_arrays()
    split = digits_split()
    estimator = MLPClassifier(**DIGITS_CLASSIFIER_CONFIG)
    estimator.fit(classifier_input(images[split.train]), labels[split.train])
    held_out = images[split.held_out]
    accuracy = float(estimator.score(classifier_input(held_out), labels[split.held_out]))
    weight = np.asarray(estimator.coefs_[0], dtype=np.float64)
    bias = np.asarray(estimator.intercepts_[0], dtype=np.float64)
    features = np.tanh(classifier_input(held_out) @ weight + bias)
    mu, sigma = gaussian_stats(features)
    return DigitsClassifier(
        estimator=estimator,
        hidden_weight=weight,
        hidden_bias=bias,
        held_out_mu=mu,
        held_out_sigma=sigma,
        held_out_accuracy=accuracy,
    )
