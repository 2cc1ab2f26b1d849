"""Reference statistics: what FID, sFID, precision/recall and KID need of the reference images, cached.

A statistics file is an ``.npz`` with (no pickles):

| key | contents |
|---|---|
| ``mu``, ``sigma`` | float64 mean (2048,) and covariance (2048, 2048) of the pool features [S32] |
| ``mu_spatial``, ``sigma_spatial`` | the same for sFID's 2023-d spatial features |
| ``features`` | float32 (N, 2048) pool features (the network's own precision) for precision/recall and KID |
| ``extractor`` | the extractor identity: network name and weights SHA-256 |
| ``images_sha256`` | SHA-256 of the reference images (shape + bytes) |
| ``format`` | ``"iddpm-inception-stats-1"`` |

``reference_statistics(spec, extractor)`` computes them from a data spec (``.npz`` batch, image folder,
``digits``…) or loads a statistics file.  Computed statistics are cached beside the reference
(``<reference>.stats-<key>.npz``, ``key`` = SHA-256 of images hash + extractor identity, 16 hex digits);
a reference without a writable folder (``digits``, a read-only place) caches in ``cache_dir()/stats``.
A second run with the same images and weights reuses the file.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import numpy as np
from numpy.typing import NDArray

from impl.atomic import atomic_write
from impl.evaluate.frechet import gaussian_stats
from impl.evaluate.inception import InceptionFeatures
from impl.evaluate.inception_weights import cache_dir

__all__ = [
    "STATS_FORMAT",
    "ReferenceStats",
    "cached_stats_path",
    "images_sha256",
    "is_stats_file",
    "load_reference_images",
    "read_stats",
    "reference_statistics",
    "stats_from_features",
    "write_stats",
]

STATS_FORMAT = "iddpm-inception-stats-1"
_KEYS = ("mu", "sigma", "mu_spatial", "sigma_spatial", "features", "extractor", "images_sha256", "format")


class Extractor(Protocol):
    @property
    def identity(self) -> str: ...

    def extract(self, images_uint8_nhwc: NDArray[np.uint8]) -> InceptionFeatures: ...


@dataclass(frozen=True)
class ReferenceStats:
    mu: NDArray[np.float64]
    sigma: NDArray[np.float64]
    mu_spatial: NDArray[np.float64]
    sigma_spatial: NDArray[np.float64]
    features: NDArray[np.float32]
    extractor: str
    images_sha256: str

    @property
    def num_images(self) -> int:
        return int(self.features.shape[0])


def images_sha256(images: NDArray[np.uint8]) -> str:
    """SHA-256 over the shape and the C-order bytes of a uint8 image array."""
    digest = hashlib.sha256(repr(tuple(images.shape)).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


def stats_from_features(features: InceptionFeatures, extractor: str, image_hash: str) -> ReferenceStats:
    """Float64 means and covariances of pool and spatial features (at least 2 images)."""
    if features.pool.shape[0] < 2:
        raise ValueError(f"the reference must hold at least 2 images; got {features.pool.shape[0]}")
    mu, sigma = gaussian_stats(features.pool)
    mu_s, sigma_s = gaussian_stats(features.spatial)
    return ReferenceStats(mu, sigma, mu_s, sigma_s, features.pool.astype(np.float32), extractor, image_hash)


def is_stats_file(path: str | os.PathLike[str]) -> bool:
    """True for an ``.npz`` holding a ``format`` entry equal to ``STATS_FORMAT``."""
    p = Path(path)
    if not (p.is_file() and p.suffix.lower() == ".npz"):
        return False
    try:
        with np.load(p, allow_pickle=False) as archive:
            return "format" in archive.files and str(archive["format"]) == STATS_FORMAT
    except (OSError, ValueError):
        return False


def read_stats(path: str | os.PathLike[str]) -> ReferenceStats:
    """Load a statistics file written by ``write_stats``; ValueError naming what is wrong."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as archive:
            missing = [k for k in _KEYS if k not in archive.files]
            if missing:
                raise ValueError(f"statistics file {str(p)!r} lacks {missing}; write one with `iddpm stats`")
            if str(archive["format"]) != STATS_FORMAT:
                raise ValueError(f"statistics file {str(p)!r} has format {archive['format']!s}")
            return ReferenceStats(
                mu=np.asarray(archive["mu"], dtype=np.float64),
                sigma=np.asarray(archive["sigma"], dtype=np.float64),
                mu_spatial=np.asarray(archive["mu_spatial"], dtype=np.float64),
                sigma_spatial=np.asarray(archive["sigma_spatial"], dtype=np.float64),
                features=np.asarray(archive["features"], dtype=np.float32),
                extractor=str(archive["extractor"]),
                images_sha256=str(archive["images_sha256"]),
            )
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read statistics file {str(p)!r}: {exc}") from None


def write_stats(path: str | os.PathLike[str], stats: ReferenceStats) -> None:
    """Write ``stats`` to ``path`` atomically (the folder must exist)."""

    def write(handle: IO[bytes]) -> None:
        np.savez(
            handle,
            mu=stats.mu,
            sigma=stats.sigma,
            mu_spatial=stats.mu_spatial,
            sigma_spatial=stats.sigma_spatial,
            features=stats.features,
            extractor=np.array(stats.extractor),
            images_sha256=np.array(stats.images_sha256),
            format=np.array(STATS_FORMAT),
        )

    atomic_write(path, write)


def load_reference_images(spec: str, image_size: int | None = None) -> NDArray[np.uint8]:
    """uint8 NHWC images of a data spec (``load_data``: digits, an image folder, an ``.npz`` batch)."""
    from impl.data import load_data

    return load_data(spec, image_size=image_size).images


def cached_stats_path(spec: str, image_hash: str, extractor: str) -> Path:
    """``<reference>.stats-<key>.npz`` beside a file or folder reference, else in ``cache_dir()/stats``."""
    key = hashlib.sha256(f"{image_hash}\n{extractor}".encode()).hexdigest()[:16]
    path = Path(spec)
    if path.exists() and os.access(path.resolve().parent, os.W_OK):
        return path.resolve().parent / f"{path.resolve().name}.stats-{key}.npz"
    safe = "".join(c if c.isalnum() else "_" for c in spec)[:40]
    return cache_dir() / "stats" / f"{safe}.stats-{key}.npz"


def reference_statistics(
    spec: str, extractor: Extractor, *, image_size: int | None = None, use_cache: bool = True
) -> tuple[ReferenceStats, str]:
    """The statistics of reference ``spec`` and where they came from ("file", "cache" or "computed")."""
    if is_stats_file(spec):
        stats = read_stats(spec)
        if stats.extractor != extractor.identity:
            raise ValueError(
                f"reference statistics {spec!r} were computed with {stats.extractor!r}, not with "
                f"{extractor.identity!r}: recompute them with `iddpm stats` and these weights"
            )
        return stats, "file"
    images = load_reference_images(spec, image_size)
    image_hash = images_sha256(images)
    cached = cached_stats_path(spec, image_hash, extractor.identity)
    if use_cache and cached.is_file():
        stats = read_stats(cached)
        if stats.images_sha256 == image_hash and stats.extractor == extractor.identity:
            return stats, "cache"
    stats = stats_from_features(extractor.extract(images), extractor.identity, image_hash)
    if use_cache:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            write_stats(cached, stats)
        except (OSError, ValueError) as exc:
            warnings.warn(f"could not cache reference statistics at {cached}: {exc}", stacklevel=2)
    return stats, "computed"
