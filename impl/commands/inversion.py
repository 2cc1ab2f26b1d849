"""What ``iddpm encode`` and ``iddpm interpolate`` share: reading images for a model, DDIM inversion."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch


def check_new_output(output: str, overwrite: bool) -> Path:
    """``--output`` as a path: a file in an existing folder, not replaced without ``--overwrite``."""
    from impl.commands.common import check_output_folder

    if not output:
        raise ValueError("--output is required: the .npz to write")
    check_output_folder(output)
    path = Path(output)
    if path.exists() and not overwrite:
        raise ValueError(f"--output {output!r} exists; pass --overwrite to replace it")
    return path


def read_images(
    path: str, flag: str, size: int, channels: int
) -> tuple[np.ndarray[Any, np.dtype[np.uint8]], np.ndarray[Any, np.dtype[np.int64]] | None]:
    """``arr_0`` (uint8 NHWC, H = W = size, C = channels) and ``arr_1`` labels if present, of an .npz."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"--{flag} {path!r} is not a file")
    with np.load(path) as data:
        if "arr_0" not in data.files:
            raise ValueError(f"--{flag} {path!r} has no arr_0 (uint8 NHWC images)")
        images = np.asarray(data["arr_0"])
        labels = np.asarray(data["arr_1"]).astype(np.int64) if "arr_1" in data.files else None
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"--{flag} {path!r}: arr_0 must be uint8 NHWC images, got dtype {images.dtype}, shape "
            f"{images.shape}"
        )
    if images.shape[1:] != (size, size, channels):
        raise ValueError(
            f"--{flag} {path!r}: images are {images.shape[1]}x{images.shape[2]}x{images.shape[3]} "
            f"(HxWxC) but the model takes {size}x{size}x{channels}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"--{flag} {path!r} holds no images")
    return images, labels


def to_model_range(images: np.ndarray[Any, np.dtype[np.uint8]], device: torch.device) -> torch.Tensor:
    """uint8 NHWC in [0, 255] → float32 NCHW in [−1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def class_kwargs(
    flags: dict[str, Any], labels: np.ndarray[Any, np.dtype[np.int64]] | None, flag: str, device: torch.device
) -> dict[str, Any]:
    """``{"y": labels}`` for a class-conditional model (labels required, in range), else ``{}``."""
    if not flags.get("class_cond"):
        return {}
    num_classes = int(flags["num_classes"])
    if labels is None:
        raise ValueError(f"--{flag}: the model is class-conditional; the .npz needs arr_1 labels")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"--{flag}: labels must be in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    return {"y": torch.from_numpy(labels).to(device)}


def encode(
    loaded: Any, args: argparse.Namespace, x0: torch.Tensor, model_kwargs: dict[str, Any]
) -> torch.Tensor:
    """DDIM inversion x_0 → x_T [S47] of ``x0`` in batches of ``--batch_size``."""
    latents = []
    for start in range(0, x0.shape[0], args.batch_size):
        part = {k: v[start : start + args.batch_size] for k, v in model_kwargs.items()}
        latents.append(
            loaded.diffusion.ddim_reverse_sample_loop(
                loaded.model,
                x0[start : start + args.batch_size],
                clip_denoised=args.clip_denoised,
                model_kwargs=part,
            )
        )
    return torch.cat(latents)
