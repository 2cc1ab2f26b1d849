"""Inception features of uint8 images: torch-fidelity's ``inception-v3-compat`` with checked weights.

``InceptionExtractor(weights).extract(images)`` returns, per image, in float64:

- ``pool``: the 2048-d average-pool features (torch-fidelity's ``"2048"``; TF ``pool_3``): FID, KID,
  precision/recall;
- ``logits``: the 1008 logits without the bias (``"logits_unbiased"``; the original Inception-Score code
  multiplies ``pool_3`` by the softmax weights alone): ``softmax(logits)`` is the Inception Score's p(y|x);
- ``spatial``: sFID's 2023-d features, the first 7 channels of TF's ``mixed_6/conv``, which in
  torch-fidelity's port is the output of ``Mixed_6d.branch1x1`` (conv → batch norm → ReLU, 768 → 192
  channels at 17×17), caught by a forward hook and flattened in TF's (H, W, C) order: 17·17·7 = 2023.

The module resizes every image to 299×299 itself (bilinear, TensorFlow-1 style, inside its ``forward``) and
maps 0..255 to [−1, 1]; greyscale images are repeated to 3 channels first.  Batches run on the GPU when
there is one (``device="auto"``) with a tqdm progress bar.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from unittest import mock

import numpy as np
import torch
from numpy.typing import NDArray

from impl.evaluate.inception_weights import (
    EXTRA_HINT,
    MetricsUnavailableError,
    file_sha256,
    load_weights_file,
    resolve_weights_path,
)

__all__ = [
    "FEATURE_EXTRACTOR_NAME",
    "SPATIAL_CHANNELS",
    "SPATIAL_LAYER",
    "InceptionExtractor",
    "InceptionFeatures",
    "build_inception",
    "random_inception_state_dict",
]

FEATURE_EXTRACTOR_NAME = "torch-fidelity inception-v3-compat (TF 2015-12-05 graph)"
SPATIAL_LAYER = "Mixed_6d.branch1x1"
SPATIAL_CHANNELS = 7
FIDELITY_MODULE = "torch_fidelity.feature_extractor_inceptionv3"


def _import_without_package_init() -> ModuleType:
    """Import the Inception module alone: torch-fidelity's ``__init__`` imports torchvision (for its data
    sets), which the Inception network does not need and which fails to import beside a CPU-only torch of
    another build.  The package object is registered only while its submodules load, then removed."""
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None or spec.submodule_search_locations is None:
        raise MetricsUnavailableError(f"the Inception metrics need torch-fidelity: {EXTRA_HINT}")
    package = importlib.util.module_from_spec(spec)
    sys.modules["torch_fidelity"] = package
    try:
        return importlib.import_module(FIDELITY_MODULE)
    finally:
        if sys.modules.get("torch_fidelity") is package:
            del sys.modules["torch_fidelity"]


def fidelity_inception_module() -> ModuleType:
    """torch-fidelity's ``feature_extractor_inceptionv3`` module (one-line error without the extra)."""
    if FIDELITY_MODULE in sys.modules:
        return sys.modules[FIDELITY_MODULE]
    if importlib.util.find_spec("torch_fidelity") is None:
        raise MetricsUnavailableError(f"the Inception metrics need torch-fidelity: {EXTRA_HINT}")
    try:
        return importlib.import_module(FIDELITY_MODULE)
    except (ImportError, RuntimeError):  # torchvision missing or broken: the network does not need it
        for name in [n for n in sys.modules if n == "torch_fidelity" or n.startswith("torch_fidelity.")]:
            del sys.modules[name]
        return _import_without_package_init()


@contextlib.contextmanager
def _state_dict_source(module: ModuleType, state_dict: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Make the class's download call return ``state_dict`` (or, with None, skip loading altogether)."""

    def provide(url: str, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        if url != module.URL_INCEPTION_V3:
            raise RuntimeError(f"unexpected weights URL {url!r}")
        return state_dict if state_dict is not None else {}

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(module, "load_state_dict_from_url", provide))
        if state_dict is None:
            cls = module.FeatureExtractorInceptionV3
            stack.enter_context(mock.patch.object(cls, "load_state_dict", lambda self, *a, **k: None))
        yield


def build_inception(state_dict: dict[str, torch.Tensor] | None) -> torch.nn.Module:
    """torch-fidelity's Inception with ``state_dict`` loaded strictly (None: PyTorch's initial weights).

    Missing, unexpected or mis-shaped entries raise ``ValueError`` naming the first few.
    """
    module = fidelity_inception_module()
    try:
        with _state_dict_source(module, state_dict):
            net: torch.nn.Module = module.FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=None
            )
    except RuntimeError as exc:
        text = " ".join(str(exc).split())
        raise ValueError(
            f"inception weights do not match the inception-v3-compat network: {text[:300]}"
        ) from None
    return net


def random_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights for the same architecture (tests, benchmarks): He-normal convolutions, unit batch
    norms, small-normal logits layer; the activations keep their scale through the 94 layers."""
    net = build_inception(None)
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, value in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if value.ndim == 4:  # convolution weight: fan_in = in_channels · kh · kw
            std = (2.0 / (value.shape[1] * value.shape[2] * value.shape[3])) ** 0.5
            state[name] = torch.randn(value.shape, generator=gen) * std
        elif name == "fc.weight":
            state[name] = torch.randn(value.shape, generator=gen) / value.shape[1] ** 0.5
        elif name.endswith("running_var") or name.endswith("bn.weight"):
            state[name] = torch.ones_like(value)
        else:
            state[name] = torch.zeros_like(value)
    return state


@dataclass(frozen=True)
class InceptionFeatures:
    """Per-image features in float64: ``pool`` (N, 2048), ``logits`` (N, 1008), ``spatial`` (N, 2023)."""

    pool: NDArray[np.float64]
    logits: NDArray[np.float64]
    spatial: NDArray[np.float64]

    def probabilities(self) -> NDArray[np.float64]:
        """``softmax(logits)`` row by row (the Inception Score's p(y|x))."""
        shifted = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        probs: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
        return probs


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class InceptionExtractor:
    """The network with its checked weights on ``device``; ``extract`` maps uint8 NHWC images to features.

    ``identity`` (name + weights SHA-256) keys the reference-statistics cache.
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "auto",
        batch_size: int = 100,
        progress: bool = True,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
        fidelity_inception_module()  # the one-line "install the extra" error comes before any download
        path = resolve_weights_path(weights)
        self.weights_path = path
        self.weights_sha256 = file_sha256(path)
        self.device = _resolve_device(device)
        self.batch_size = batch_size
        self.progress = progress
        self.net = build_inception(load_weights_file(path)).to(self.device)
        self._spatial: list[torch.Tensor] = []
        layer = self.net.get_submodule(SPATIAL_LAYER)
        layer.register_forward_hook(lambda _m, _i, out: self._spatial.append(out))

    @property
    def identity(self) -> str:
        return f"{FEATURE_EXTRACTOR_NAME}; weights sha256 {self.weights_sha256}"

    @torch.no_grad()
    def extract(self, images_uint8_nhwc: NDArray[np.uint8]) -> InceptionFeatures:
        """Features of (N, H, W, C) uint8 images, C in {1, 3}, in batches of ``batch_size``."""
        from tqdm import tqdm

        images = np.asarray(images_uint8_nhwc)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
            raise ValueError(
                f"images must be uint8 (N, H, W, C) with C in (1, 3); got {images.dtype} {images.shape}"
            )
        if images.shape[0] == 0:
            raise ValueError("images must hold at least one image")
        pools, logits, spatials = [], [], []
        bar = tqdm(total=images.shape[0], desc="inception", unit="img", disable=not self.progress)
        try:
            for lo in range(0, images.shape[0], self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(images[lo : lo + self.batch_size]))
                x = batch.to(self.device).permute(0, 3, 1, 2)
                if x.shape[1] == 1:
                    x = x.expand(-1, 3, -1, -1)
                self._spatial.clear()
                pool, logit = self.net(x.contiguous())
                spatial = self._spatial[-1][:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1)
                pools.append(pool.double().cpu())
                logits.append(logit.double().cpu())
                spatials.append(spatial.double().cpu())
                bar.update(x.shape[0])
        finally:
            bar.close()
            self._spatial.clear()
        return InceptionFeatures(
            pool=torch.cat(pools).numpy(),
            logits=torch.cat(logits).numpy(),
            spatial=torch.cat(spatials).numpy(),
        )
