"""Where the Inception weights come from, and loading them without executing code.

The network is torch-fidelity's ``inception-v3-compat``: its ``FeatureExtractorInceptionV3`` class, a
PyTorch port of TensorFlow's 2015-12-05 Inception graph (the one every published FID was computed with).
Its weights file is ``weights-inception-2015-12-05-6726825d.pth`` (a plain state dict; ``6726825d`` is the
start of its SHA-256).  Which file is used, first match wins:

1. ``--inception_weights PATH`` (the ``weights`` argument);
2. the environment variable ``IDDPM_INCEPTION_WEIGHTS``;
3. the copy in the package cache, ``$IDDPM_CACHE_DIR`` or ``$XDG_CACHE_HOME/iddpm`` or ``~/.cache/iddpm``;
4. a one-time download of the release file into that cache (checked against the SHA-256 prefix).

Offline, with none of these, a one-line ``MetricsUnavailableError`` names options 1 and 2.  Files are read
with ``torch.load(..., weights_only=True)`` (or ``safetensors`` for ``.safetensors``): a pickle that would
run code is refused.  torch-fidelity's own loader unpickles freely, so ``impl.evaluate.inception`` hands its
module the state dict checked here instead of a path.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import torch

__all__ = [
    "INCEPTION_WEIGHTS_FILE",
    "INCEPTION_WEIGHTS_SHA256_PREFIX",
    "INCEPTION_WEIGHTS_URL",
    "WEIGHTS_ENV",
    "MetricsUnavailableError",
    "cache_dir",
    "file_sha256",
    "load_weights_file",
    "resolve_weights_path",
]

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_WEIGHTS_FILE
)
INCEPTION_WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_ENV = "IDDPM_INCEPTION_WEIGHTS"
CACHE_ENV = "IDDPM_CACHE_DIR"
EXTRA_HINT = "pip install 'iddpm[metrics]'"


class MetricsUnavailableError(ValueError):
    """The Inception metrics cannot run here (no torch-fidelity, or no weights); the message says why.

    A ``ValueError`` so that the CLI's error policy prints it as one line and exits 2.
    """


def cache_dir() -> Path:
    """The package cache: ``$IDDPM_CACHE_DIR``, else ``$XDG_CACHE_HOME/iddpm``, else ``~/.cache/iddpm``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "iddpm"


def _offline_message(reason: str) -> str:
    return (
        f"the Inception weights are not available ({reason}); pass --inception_weights PATH or set "
        f"{WEIGHTS_ENV}=PATH to a local copy of {INCEPTION_WEIGHTS_FILE}"
    )


def download_weights(destination: Path) -> Path:
    """Download the release weights to ``destination`` (atomically, SHA-256-prefix checked) and return it."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(
            INCEPTION_WEIGHTS_URL,
            str(destination),
            hash_prefix=INCEPTION_WEIGHTS_SHA256_PREFIX,
            progress=True,
        )
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a hash mismatch is a RuntimeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MetricsUnavailableError(_offline_message(f"download failed: {first}")) from None
    return destination


def resolve_weights_path(weights: str | os.PathLike[str] | None = None, *, download: bool = True) -> Path:
    """The weights file to use (see the module docstring for the order); downloads once when allowed."""
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"inception_weights file {str(path)!r} does not exist")
        return path
    from_env = os.environ.get(WEIGHTS_ENV, "")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise FileNotFoundError(f"{WEIGHTS_ENV} names {from_env!r}, which does not exist")
        return path
    cached = cache_dir() / INCEPTION_WEIGHTS_FILE
    if cached.is_file():
        return cached
    if not download:
        raise MetricsUnavailableError(_offline_message(f"no copy in {cached.parent}"))
    return download_weights(cached)


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file (memoised per path, size and modification time)."""
    stat = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def load_weights_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A flat ``{name: floating tensor}`` state dict from ``.pth``/``.pt`` (weights_only) or safetensors."""
    p = Path(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: object = load_file(str(p), device="cpu")
        else:
            loaded = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable or code-carrying file: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"inception_weights {str(p)!r} is not a loadable state dict: {first}") from None
    if not isinstance(loaded, dict) or not loaded:
        raise ValueError(f"inception_weights {str(p)!r} must hold a non-empty state dict (name -> tensor)")
    state: dict[str, torch.Tensor] = {}
    for name, value in loaded.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f"inception_weights {str(p)!r}: entry {name!r} is not a named tensor")
        if name.endswith("num_batches_tracked"):
            continue
        if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
            raise ValueError(f"inception_weights {str(p)!r}: {name} must be a finite floating tensor")
        state[name] = value
    return state
