"""The Inception extractor: safe weight loading, where weights come from, the sFID layer, input handling."""

from __future__ import annotations

import importlib.util
import sys
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from impl.evaluate import InceptionExtractor, MetricsUnavailableError, resolve_weights_path
from impl.evaluate.inception import SPATIAL_LAYER, build_inception
from impl.evaluate.inception_weights import INCEPTION_WEIGHTS_FILE, load_weights_file

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch_fidelity") is None, reason="the metrics extra is not installed"
)

# float32 network: the same images through different batch compositions or channel layouts go through
# the same kernels except for blocking; ~100 layers of float32 rounding (eps 1.2e-7) on activations of
# order 1 stay well below 1e-4 absolute.
FLOAT32_NETWORK_ATOL = 1e-4


def _images(n: int, size: int = 16, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


class _NotATensor:
    """A pickled object of a class: weights_only loading refuses to build it."""


def test_weights_files_are_loaded_without_running_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(2), "payload": _NotATensor()}, path)
    with pytest.raises(ValueError, match="not a loadable state dict"):
        load_weights_file(path)


def test_mismatched_weights_are_refused(inception_weights: Path, tmp_path: Path) -> None:
    state = load_weights_file(inception_weights)
    del state["fc.bias"]
    state["fc.weight"] = state["fc.weight"][:10]
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(ValueError, match="do not match the inception-v3-compat network"):
        build_inception(load_weights_file(bad))


def test_safetensors_weights_load_the_same(inception_weights: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = load_weights_file(inception_weights)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    again = load_weights_file(path)
    assert again.keys() == state.keys()
    assert all(torch.equal(again[k], state[k]) for k in state)


def test_weights_resolution_order(
    inception_weights: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert resolve_weights_path(inception_weights) == inception_weights
    monkeypatch.setenv("IDDPM_INCEPTION_WEIGHTS", str(inception_weights))
    assert resolve_weights_path(None) == inception_weights
    monkeypatch.setenv("IDDPM_INCEPTION_WEIGHTS", str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match="IDDPM_INCEPTION_WEIGHTS"):
        resolve_weights_path(None)
    monkeypatch.delenv("IDDPM_INCEPTION_WEIGHTS")
    cache = tmp_path / "cache"
    monkeypatch.setenv("IDDPM_CACHE_DIR", str(cache))
    cache.mkdir()
    (cache / INCEPTION_WEIGHTS_FILE).write_bytes(inception_weights.read_bytes())
    assert resolve_weights_path(None) == cache / INCEPTION_WEIGHTS_FILE


def test_offline_without_a_copy_names_both_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real download path runs; only the network call fails, as it does offline."""

    def offline(*args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(MetricsUnavailableError) as info:
        resolve_weights_path(None)
    message = str(info.value)
    assert "--inception_weights" in message and "IDDPM_INCEPTION_WEIGHTS" in message
    assert "\n" not in message


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from impl.evaluate import inception

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch_fidelity" else real_find_spec(name, *a),
    )
    for name in [n for n in sys.modules if n.startswith("torch_fidelity")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MetricsUnavailableError, match=r"pip install 'iddpm\[metrics\]'"):
        inception.fidelity_inception_module()


def test_features_shapes_float64_and_greyscale(extractor: InceptionExtractor) -> None:
    grey = _images(3, channels=1)
    out = extractor.extract(grey)
    assert out.pool.shape == (3, 2048) and out.logits.shape == (3, 1008) and out.spatial.shape == (3, 2023)
    assert out.pool.dtype == out.logits.dtype == out.spatial.dtype == np.float64
    rgb = extractor.extract(np.repeat(grey, 3, axis=3))
    np.testing.assert_allclose(out.pool, rgb.pool, rtol=0, atol=FLOAT32_NETWORK_ATOL)
    probs = out.probabilities()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert float(np.std(out.pool, axis=0).max()) > 0  # different images, different features


def test_batching_does_not_change_features(extractor: InceptionExtractor) -> None:
    images = _images(3, seed=1)
    together = extractor.extract(images)
    extractor.batch_size, saved = 1, extractor.batch_size
    try:
        alone = extractor.extract(images)
    finally:
        extractor.batch_size = saved
    np.testing.assert_allclose(together.pool, alone.pool, rtol=0, atol=FLOAT32_NETWORK_ATOL)
    np.testing.assert_allclose(together.spatial, alone.spatial, rtol=0, atol=FLOAT32_NETWORK_ATOL)


def test_spatial_features_come_from_mixed_6d_branch1x1(inception_weights: Path) -> None:
    """Changing that layer's weights changes the spatial features; changing a later block does not, and the
    spatial vector is the layer's first 7 output channels in (H, W, C) order."""
    images = _images(2, seed=2)
    base = InceptionExtractor(inception_weights, device="cpu", progress=False)
    captured: list[torch.Tensor] = []
    base.net.get_submodule(SPATIAL_LAYER).register_forward_hook(lambda _m, _i, o: captured.append(o.clone()))
    before = base.extract(images)
    layer_out = captured[-1]
    assert layer_out.shape == (2, 192, 17, 17)
    direct = layer_out[:, :7].permute(0, 2, 3, 1).reshape(2, -1).double().numpy()
    np.testing.assert_array_equal(before.spatial, direct)
    with torch.no_grad():
        base.net.get_submodule("Mixed_7c.branch1x1.conv").weight.mul_(3.0)
    later = base.extract(images)
    np.testing.assert_array_equal(later.spatial, before.spatial)
    assert not np.allclose(later.pool, before.pool)
    with torch.no_grad():
        base.net.get_submodule(SPATIAL_LAYER + ".conv").weight.mul_(3.0)
    assert not np.allclose(base.extract(images).spatial, before.spatial)


def test_bad_images_are_refused(extractor: InceptionExtractor) -> None:
    with pytest.raises(ValueError, match="uint8"):
        extractor.extract(np.zeros((2, 8, 8, 3), dtype=np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="C in"):
        extractor.extract(np.zeros((2, 8, 8, 4), dtype=np.uint8))
