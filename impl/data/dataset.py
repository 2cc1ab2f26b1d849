"""``ImageDataset``: an in-memory uint8 image set served as model-range tensors, with reproducible flips.

Random horizontal flips are decided per item by a private ``torch.Generator`` seeded from
``(flip_seed, epoch, index)`` through ``numpy.random.SeedSequence``.  So a flip depends only on those three
numbers: not on the DataLoader's worker count, its worker seeds, the order items are read in, or the global
torch RNG.  Call ``set_epoch(e)`` before each epoch to get fresh flips (with ``persistent_workers=True`` the
workers keep the epoch they were started with, so use non-persistent workers or a new DataLoader per epoch).
Code that batches ``images`` itself gets the same decisions from ``flip_mask(indices)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from impl.data.images import check_images, to_model_range

__all__ = ["ImageDataset"]


def _check_labels(labels: object, n: int) -> NDArray[np.int64] | None:
    if labels is None:
        return None
    if not isinstance(labels, np.ndarray) or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("labels must be a 1-D integer numpy array (one class id per image) or None")
    if labels.shape[0] != n:
        raise ValueError(f"labels must have one entry per image: {n} images but {labels.shape[0]} labels")
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels must be non-negative class ids; got minimum {int(labels.min())}")
    return labels.astype(np.int64)


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Square uint8 NHWC images (1 or 3 channels) and optional int64 labels; ``ds[i] -> (x, y)``.

    ``x`` is float32 CHW ``p / 127.5 - 1`` in [-1, 1] (flipped left-right when ``random_flip`` decides so);
    ``y`` is the int label, or 0 when the set has no labels.
    """

    def __init__(
        self,
        images: NDArray[np.uint8],
        labels: NDArray[np.int64] | None = None,
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        random_flip: bool = False,
        flip_seed: int = 0,
    ) -> None:
        self.images: NDArray[np.uint8] = check_images(images, "images", square=True)
        if self.images.shape[0] == 0:
            raise ValueError("images must hold at least one image; got 0")
        self.labels: NDArray[np.int64] | None = _check_labels(labels, self.images.shape[0])
        if self.labels is None:
            if num_classes is not None or class_names is not None:
                raise ValueError("num_classes and class_names need labels; got labels=None")
            self.num_classes: int | None = None
        else:
            least = int(self.labels.max()) + 1
            if class_names is not None and num_classes is None:
                num_classes = len(class_names)
            if num_classes is None:
                num_classes = least
            if num_classes < least:
                raise ValueError(f"num_classes must exceed every label; got {num_classes}, label {least - 1}")
            if class_names is not None and len(class_names) != num_classes:
                raise ValueError(f"class_names needs {num_classes} entries; got {len(class_names)}")
            self.num_classes = num_classes
        self.class_names: tuple[str, ...] | None = None if class_names is None else tuple(class_names)
        self.image_size: int = int(self.images.shape[1])
        self.channels: int = int(self.images.shape[3])
        self.random_flip = bool(random_flip)
        if isinstance(flip_seed, bool) or not isinstance(flip_seed, int) or flip_seed < 0:
            raise ValueError(f"flip_seed must be a non-negative int; got {flip_seed!r}")
        self.flip_seed = flip_seed
        self.epoch = 0

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose flips ``__getitem__`` draws (see the module docstring)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int; got {epoch!r}")
        self.epoch = epoch

    def flips(self, index: int) -> bool:
        """Whether item ``index`` is flipped in the current epoch (always False without ``random_flip``)."""
        if not self.random_flip:
            return False
        state = np.random.SeedSequence([self.flip_seed, self.epoch, index]).generate_state(2, dtype=np.uint32)
        generator = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        return bool(torch.randint(0, 2, (1,), generator=generator).item() == 1)

    def flip_mask(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Bool tensor of ``flips(i)`` for each ``i`` in ``indices`` (for code batching ``images`` itself)."""
        values = indices.tolist() if isinstance(indices, torch.Tensor) else list(indices)
        return torch.tensor([self.flips(int(i)) for i in values], dtype=torch.bool)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        index %= n
        x = to_model_range(self.images[index : index + 1])[0]
        if self.flips(index):
            x = torch.flip(x, dims=(2,))
        y = 0 if self.labels is None else int(self.labels[index])
        return x, y

    def __repr__(self) -> str:
        return (
            f"ImageDataset(n={len(self)}, image_size={self.image_size}, channels={self.channels}, "
            f"num_classes={self.num_classes}, random_flip={self.random_flip})"
        )
