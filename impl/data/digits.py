"""The built-in ``digits`` data: scikit-learn's 8x8 handwritten digits (shipped with it, no download).

1,797 greyscale images with 17 grey levels ``v = 0..16`` and labels 0..9.  The grey levels are mapped to 8-bit
pixels by ``p = floor((255 v + 8) / 16)``, i.e. ``round(v * 255 / 16)`` with halves rounded up (the only half
is ``v = 8 -> 127.5 -> 128``): 0, 16, 32, 48, 64, 80, 96, 112, 128, 143, 159, 175, 191, 207, 223, 239, 255.

``digits_split(seed)`` is the deterministic train / held-out split used by the evaluation: generated digits
are compared with the held-out digits, and the digits classifier is trained on the train digits only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DIGITS_CLASS_NAMES",
    "DIGITS_HELD_OUT_FRACTION",
    "DIGITS_SPLIT_SEED",
    "DigitsSplit",
    "digits_grey_levels_to_pixels",
    "digits_split",
    "load_digits_arrays",
]

DIGITS_SPLIT_SEED = 0
DIGITS_HELD_OUT_FRACTION = 0.2
DIGITS_CLASS_NAMES = tuple(str(k) for k in range(10))


def digits_grey_levels_to_pixels(levels: NDArray[np.float64]) -> NDArray[np.uint8]:
    """Grey levels ``v`` in 0..16 to pixels ``p = floor((255 v + 8) / 16)`` (``255 v / 16``, half up)."""
    v = np.asarray(levels)
    if v.size and (v.min() < 0 or v.max() > 16 or not np.array_equal(v, np.round(v))):
        raise ValueError("levels must be integers in 0..16 (scikit-learn digits grey levels)")
    return ((v.astype(np.int64) * 255 + 8) // 16).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _digits_arrays_cached() -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = digits_grey_levels_to_pixels(np.asarray(bunch.images, dtype=np.float64))[:, :, :, None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_digits_arrays() -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """All 1,797 digits: fresh copies of the uint8 images ``(1797, 8, 8, 1)`` and int64 labels ``(1797,)``."""
    images, labels = _digits_arrays_cached()
    return images.copy(), labels.copy()


@dataclass(frozen=True)
class DigitsSplit:
    """Sorted index arrays into ``load_digits_arrays()``; disjoint, together all 1,797 digits."""

    train: NDArray[np.int64]
    held_out: NDArray[np.int64]


def digits_split(
    seed: int = DIGITS_SPLIT_SEED, held_out_fraction: float = DIGITS_HELD_OUT_FRACTION
) -> DigitsSplit:
    """Stratified split: per class ``k``, ``round(fraction * n_k)`` digits, drawn by ``seed``, are held out.

    Each class is permuted by ``numpy.random.default_rng([seed, k])``, so the split depends only on ``seed``
    and ``held_out_fraction`` (not on the order in which classes are visited).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1); got {held_out_fraction!r}")
    _, labels = _digits_arrays_cached()
    held: list[NDArray[np.int64]] = []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k).astype(np.int64)
        count = round(held_out_fraction * members.size)
        order = np.random.default_rng([seed, int(k)]).permutation(members.size)
        held.append(members[order[:count]])
    held_out = np.sort(np.concatenate(held))
    train = np.setdiff1d(np.arange(labels.size, dtype=np.int64), held_out)
    return DigitsSplit(train=train.astype(np.int64), held_out=held_out.astype(np.int64))
