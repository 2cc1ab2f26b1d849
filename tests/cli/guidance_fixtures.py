"""A tiny noisy-digits classifier trained in seconds, written in the classifier-run layout of
``iddpm train_classifier`` (``checkpoints/step_N/`` by ``save_training_checkpoint``; ``state.json``'s config
with ``kind``, ``classifier_flags``, ``model_flags``) or as a plain state-dict file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

import impl
from impl.data.digits import digits_split, load_digits_arrays
from impl.factory import build_diffusion, train_model_defaults
from impl.train.checkpoint import TrainingCheckpoint, save_training_checkpoint

# The digits classifier of these tests: two levels (8 → 4 px), no attention but the middle block's.
TINY_CLASSIFIER_FLAGS: dict[str, Any] = {
    **impl.classifier_defaults(),
    "image_size": 8,
    "classifier_width": 32,
    "classifier_depth": 1,
    "classifier_attention_resolutions": "",
    "classifier_pool": "adaptive",
    "in_channels": 1,
    "num_classes": 10,
    "channel_mult": "",
    "num_head_channels": 32,
}


def tiny_model_flags(**overrides: Any) -> dict[str, Any]:
    """The diffusion flags of tests.cli.tiny's model (``iddpm train``'s defaults with 20 steps)."""
    flags = train_model_defaults()
    flags.update({"diffusion_steps": 20, "in_channels": 1, "num_classes": 10, **overrides})
    return flags


def train_noisy_digits_classifier(
    model_flags: dict[str, Any], *, steps: int = 100, batch_size: int = 64, seed: int = 0
) -> torch.nn.Module:
    """``create_classifier(**TINY_CLASSIFIER_FLAGS)`` trained by AdamW on digits (training split) noised by
    q_sample at t of the diffusion ``model_flags`` describe, called with the model's timesteps: half of
    each batch clean (t = 0), half at uniform t."""
    torch.manual_seed(seed)
    images, labels = load_digits_arrays()
    train = digits_split().train
    x0_all = torch.as_tensor(images[train], dtype=torch.float32).permute(0, 3, 1, 2) / 127.5 - 1.0
    y_all = torch.as_tensor(labels[train], dtype=torch.long)
    diffusion = build_diffusion({**model_flags, "timestep_respacing": ""})
    classifier = impl.create_classifier(**TINY_CLASSIFIER_FLAGS)
    opt = torch.optim.AdamW(classifier.parameters(), lr=1e-2, weight_decay=0.05)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, x0_all.shape[0], (batch_size,), generator=gen)
        t = torch.randint(0, diffusion.num_timesteps, (batch_size,), generator=gen)
        t[: batch_size // 2] = 0
        noise = torch.randn(x0_all[idx].shape, generator=gen)
        x_t = diffusion.q_sample(x0_all[idx], t, noise=noise)
        loss = torch.nn.functional.cross_entropy(classifier(x_t, diffusion._scale_timesteps(t)), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return classifier.eval()


def write_classifier_run(
    out_dir: Path,
    classifier: torch.nn.Module,
    model_flags: dict[str, Any],
    *,
    classifier_flags: dict[str, Any] | None = None,
    ema: tuple[float, torch.nn.Module] | None = None,
    kind: str = "classifier",
) -> Path:
    """A classifier run directory (the contract with ``iddpm train_classifier``); returns ``out_dir``.

    ``ema``: (rate, a classifier of the same layout whose weights the run saves as that EMA); give weights
    unlike ``classifier``'s, so a test can tell which of the two a reader loaded."""
    state = _weights(classifier)
    emas = {} if ema is None else {ema[0]: _weights(ema[1])}
    config = {
        "kind": kind,
        "classifier_flags": dict(TINY_CLASSIFIER_FLAGS if classifier_flags is None else classifier_flags),
        "model_flags": dict(model_flags),
    }
    save_training_checkpoint(out_dir, TrainingCheckpoint(step=1, config=config, model=state, emas=emas))
    return out_dir


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def labels_and_log_probs(
    classifier: torch.nn.Module, images_uint8: np.ndarray[Any, np.dtype[np.uint8]]
) -> torch.Tensor:
    """The classifier's log-probabilities at t = 0 for uint8 NHWC samples."""
    x = torch.as_tensor(images_uint8, dtype=torch.float32).permute(0, 3, 1, 2) / 127.5 - 1.0
    with torch.no_grad():
        return torch.log_softmax(classifier(x, torch.zeros(x.shape[0], dtype=torch.long)), dim=-1)
