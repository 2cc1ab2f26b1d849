"""Pure array operations on uint8 NHWC image batches: validation, centre crop, resize, channel conversion.

Resampling rule used everywhere in the library (data loading and evaluation):
- shrinking uses Pillow's ``BOX`` filter, the average of the source pixels each target pixel covers
  (anti-aliased, no ringing; Pillow runs it as two separable passes, each rounded to uint8, so a result is
  within one level of the exact mean);
- enlarging uses Pillow's ``BILINEAR`` filter (pixel-centre aligned, edges clamped), which never leaves the
  range of its inputs, so no overshoot and no clipping;
- results are rounded back to uint8 by Pillow.
``iddpm prepare`` uses ``resize_like_original`` instead, the original data loader's resize (BOX halvings,
then bicubic, then a centre crop), so that prepared sets match the paper's preprocessing.
Greyscale from RGB is Pillow's ``"L"`` conversion, ITU-R 601-2 luma ``L = (299 R + 587 G + 114 B) / 1000``.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

__all__ = [
    "ALLOWED_CHANNELS",
    "center_crop_square",
    "check_images",
    "convert_channels",
    "hwc_array",
    "pil_image",
    "resize_like_original",
    "resize_square",
    "to_model_range",
]

ALLOWED_CHANNELS = (1, 3)


def check_images(images: object, name: str = "images", *, square: bool = False) -> NDArray[np.uint8]:
    """Return ``images`` as a uint8 NHWC array, or raise ValueError saying what is wrong and what is allowed.

    ``name`` is the argument name used in the message."""
    if not isinstance(images, np.ndarray):
        raise ValueError(f"{name} must be a uint8 numpy array (N, H, W, C); got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8 (pixel values 0..255); got dtype {images.dtype}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, H, W, C) (4 dimensions); got shape {images.shape}")
    _, h, w, c = images.shape
    if c not in ALLOWED_CHANNELS:
        raise ValueError(f"{name} must have C in {ALLOWED_CHANNELS} (last axis); got shape {images.shape}")
    if h < 1 or w < 1:
        raise ValueError(f"{name} must have H, W >= 1; got shape {images.shape}")
    if square and h != w:
        raise ValueError(f"{name} must be square (H == W); got shape {images.shape}")
    return images


def center_crop_square(images: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The largest centred square of each image: side ``s = min(H, W)`` at ``((H - s)//2, (W - s)//2)``."""
    _, h, w, _ = images.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return images[:, top : top + side, left : left + side, :]


def pil_image(image_hwc: NDArray[np.uint8]) -> Image.Image:
    """One uint8 HWC image as a Pillow image (mode ``L`` for one channel, ``RGB`` for three)."""
    if image_hwc.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(image_hwc[:, :, 0]), mode="L")
    return Image.fromarray(np.ascontiguousarray(image_hwc), mode="RGB")


def hwc_array(image: Image.Image) -> NDArray[np.uint8]:
    """A Pillow image as uint8 HWC (a greyscale image gets a channel axis of 1)."""
    arr = np.asarray(image, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def resize_square(images: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    """Centre-crop to a square, then resize to ``size x size`` (BOX to shrink, BILINEAR to enlarge)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"image_size must be a positive int; got {size!r}")
    images = center_crop_square(check_images(images))
    side = images.shape[1]
    if side == size:
        return np.ascontiguousarray(images)
    resample = Image.Resampling.BOX if size < side else Image.Resampling.BILINEAR
    out = np.empty((images.shape[0], size, size, images.shape[3]), dtype=np.uint8)
    for i in range(images.shape[0]):
        out[i] = hwc_array(pil_image(images[i]).resize((size, size), resample=resample))
    return out


def resize_like_original(image: Image.Image, size: int) -> Image.Image:
    """The original data loader's resize of one picture to ``size x size``.

    While the short side is at least ``2 * size``, halve both sides (``//2``) with ``BOX``; then scale so the
    short side is ``size`` (each side ``round(side * size / short)``) with ``BICUBIC``; then take the centred
    ``size x size`` square at ``((H - size) // 2, (W - size) // 2)``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"image_size must be a positive int; got {size!r}")
    while min(image.size) >= 2 * size:
        image = image.resize((image.size[0] // 2, image.size[1] // 2), resample=Image.Resampling.BOX)
    scale = size / min(image.size)
    image = image.resize(
        (round(image.size[0] * scale), round(image.size[1] * scale)), resample=Image.Resampling.BICUBIC
    )
    left, top = (image.size[0] - size) // 2, (image.size[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def convert_channels(images: NDArray[np.uint8], channels: int) -> NDArray[np.uint8]:
    """Convert to ``channels`` (1: ITU-R 601-2 luma of RGB; 3: the grey channel repeated)."""
    if channels not in ALLOWED_CHANNELS:
        raise ValueError(f"channels must be one of {ALLOWED_CHANNELS}; got {channels!r}")
    images = check_images(images)
    have = images.shape[3]
    if have == channels:
        return images
    if channels == 3:
        return np.ascontiguousarray(np.repeat(images, 3, axis=3))
    out = np.empty((*images.shape[:3], 1), dtype=np.uint8)
    for i in range(images.shape[0]):
        out[i, :, :, 0] = np.asarray(pil_image(images[i]).convert("L"), dtype=np.uint8)
    return out


def to_model_range(images: NDArray[np.uint8]) -> torch.Tensor:
    """Pixels ``p`` (uint8 NHWC) to the model's data range: float32 NCHW ``p / 127.5 - 1`` in [-1, 1]."""
    images = check_images(images)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32, order="C"))
    return x / 127.5 - 1.0
