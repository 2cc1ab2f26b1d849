"""Reference points for the digits sample-quality metrics: real digits, degraded digits, and noise.

``digits_reference_points()`` scores image sets of known quality, so a number from ``digits_sample_quality``
can be read against them (the table in ``docs/data-and-evaluation.md`` is its output):
``python -c "from impl.evaluate.calibration import print_reference_points; print_reference_points()"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter

from impl.data.digits import digits_split, load_digits_arrays
from impl.data.images import convert_channels, resize_square
from impl.evaluate.digits_classifier import digits_classifier
from impl.evaluate.frechet import frechet_distance, gaussian_stats
from impl.evaluate.sample_quality import digits_sample_quality

__all__ = ["digits_reference_points", "held_out_halves_frechet", "print_reference_points"]


def _blur(images: NDArray[np.float64], sigma: float) -> NDArray[np.uint8]:
    """Gaussian blur (``sigma`` pixels, reflecting edges) of each (H, W) image, rounded to uint8."""
    blurred = np.stack([gaussian_filter(img, sigma, mode="reflect") for img in images])
    return np.clip(np.round(blurred), 0, 255).astype(np.uint8)[:, :, :, None]


def held_out_halves_frechet(seed: int = 0) -> float:
    """Fréchet distance between two random halves of the held-out digits (the sampling noise floor)."""
    images, _ = load_digits_arrays()
    held_out = images[digits_split().held_out]
    order = np.random.default_rng(seed).permutation(held_out.shape[0])
    half = held_out.shape[0] // 2
    classifier = digits_classifier()
    first = gaussian_stats(classifier.features(held_out[order[:half]]))
    second = gaussian_stats(classifier.features(held_out[order[half:]]))
    return frechet_distance(*first, *second)


def reference_image_sets(seed: int = 0) -> dict[str, NDArray[np.uint8]]:
    """Named uint8 NHWC image sets of 359 images (the held-out count) each, drawn with ``seed``."""
    images, labels = load_digits_arrays()
    split = digits_split()
    held_out = images[split.held_out]
    n = held_out.shape[0]
    rng = np.random.default_rng(seed)
    train = images[split.train][rng.permutation(split.train.size)[:n]]
    grey = held_out[:, :, :, 0].astype(np.float64)
    smooth = rng.normal(0.0, 1.0, size=(n, 8, 8))
    smooth = np.stack([gaussian_filter(z, 1.0, mode="reflect") for z in smooth])
    smooth = 127.5 + 64.0 * (smooth - smooth.mean()) / smooth.std()
    single = np.flatnonzero(labels[split.train] == 3)
    one_class = images[split.train][rng.choice(single, size=n)]
    uniform = rng.integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8)
    smooth_noise = np.clip(np.round(smooth), 0, 255).astype(np.uint8)[..., None]
    gaussian = np.clip(np.round(rng.normal(127.5, 64.0, size=(n, 8, 8, 1))), 0, 255).astype(np.uint8)
    return {
        "held_out digits (the reference itself)": held_out,
        "train digits (unseen by the reference)": train,
        "held_out at 32x32 RGB (bilinear up, then converted back)": convert_channels(
            resize_square(held_out, 32), 3
        ),
        "held_out blurred (gaussian σ = 1 px)": _blur(grey, 1.0),
        "train digits of one class (all 3s)": one_class,
        "uniform noise 0..255": uniform,
        "gaussian noise (mean 127.5, sd 64)": gaussian,
        "blurred gaussian noise (σ = 1 px, sd 64)": smooth_noise,
        "all black": np.zeros((n, 8, 8, 1), dtype=np.uint8),
    }


def digits_reference_points(seed: int = 0) -> dict[str, dict[str, Any]]:
    """``digits_sample_quality`` of each ``reference_image_sets(seed)`` entry, plus the halves' distance."""
    points = {name: digits_sample_quality(images) for name, images in reference_image_sets(seed).items()}
    halves = held_out_halves_frechet(seed)
    points["held_out half vs half, 179 vs 180 (Fréchet only)"] = {"frechet_distance": halves}
    return points


def print_reference_points(seed: int = 0) -> None:
    """Print ``digits_reference_points(seed)`` as a Markdown table."""
    keys = ("classifier_score", "mean_confidence", "class_balance", "frechet_distance")
    print("| image set | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, result in digits_reference_points(seed).items():
        cells = [f"{result[k]:.3f}" if k in result else "" for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")
