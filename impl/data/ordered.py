"""A data set read once, front to back, in its stored order, a batch at a time (what ``iddpm nll`` reads).

``OrderedImages`` wraps what ``open_training_data`` opened (or an in-memory ``ImageDataset``): the images
in memory are sliced; a ``.npy`` or a lazy image folder is read row range by row range (``read`` of
consecutive indices, one positioned read per batch for a ``.npy``); tar shards are read sample after sample
through ``iter_set_samples``, and a shard is opened only when the reader reaches it, so the first ``count``
images cost only the shards that hold them.  Nothing but the current batch is held in memory for the
streamed kinds.

``fit_to=(image_size, channels)`` converts every batch as ``load_data`` converts a whole set:
``convert_channels`` first, then ``resize_square`` (both act image by image, so batch-wise conversion
gives the same pixels as converting the set at once).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np
from numpy.typing import NDArray

from impl.data.dataset import ImageDataset
from impl.data.images import convert_channels, resize_square
from impl.data.shard_set import iter_set_samples
from impl.data.training_source import TrainingData

__all__ = ["Batch", "OrderedImages"]

Batch = tuple[NDArray[np.uint8], NDArray[np.int64] | None]


@dataclass(frozen=True)
class OrderedImages:
    """The images of ``source`` in stored order, each batch converted to ``fit_to`` when it is given."""

    source: TrainingData
    fit_to: tuple[int, int] | None = None

    @classmethod
    def of(cls, data: ImageDataset | TrainingData | OrderedImages) -> OrderedImages:
        if isinstance(data, OrderedImages):
            return data
        if isinstance(data, ImageDataset):
            data = TrainingData(
                "memory", data.image_size, data.channels, data.num_classes, data.class_names, memory=data
            )
        return cls(data)

    def __len__(self) -> int:
        src = self.source
        if src.memory is not None:
            return len(src.memory)
        if src.reader is not None:
            return len(src.reader)
        assert src.shards is not None
        return len(src.shards)

    @property
    def image_size(self) -> int:
        return self.source.image_size if self.fit_to is None else self.fit_to[0]

    @property
    def channels(self) -> int:
        return self.source.channels if self.fit_to is None else self.fit_to[1]

    @property
    def has_labels(self) -> bool:
        src = self.source
        if src.memory is not None:
            return src.memory.labels is not None
        if src.reader is not None:
            return src.reader.labels is not None
        assert src.shards is not None
        return src.shards.has_labels

    def _fit(self, images: NDArray[np.uint8]) -> NDArray[np.uint8]:
        if self.fit_to is None:
            return images
        size, channels = self.fit_to
        return resize_square(convert_channels(images, channels), size)

    def batches(self, count: int, batch_size: int) -> Iterator[Batch]:
        """The first ``count`` images in stored order, ``batch_size`` at a time (the last batch may be
        smaller), as uint8 NHWC with their int64 labels (None when the set has none)."""
        if count > len(self) or count < 0 or batch_size < 1:
            raise ValueError(
                f"count must be in [0, {len(self)}] and batch_size >= 1; got count={count}, "
                f"batch_size={batch_size}"
            )
        shards = self.source.shards is not None
        raw = self._shard_batches(count, batch_size) if shards else self._indexed(count, batch_size)
        return ((self._fit(images), labels) for images, labels in raw)

    def _indexed(self, count: int, batch_size: int) -> Iterator[Batch]:
        src = self.source
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            if src.memory is not None:
                images, labels = src.memory.images[start:stop], src.memory.labels
            else:
                assert src.reader is not None
                images, labels = src.reader.read(np.arange(start, stop, dtype=np.int64)), src.reader.labels
            yield images, None if labels is None else labels[start:stop].copy()

    def _shard_batches(self, count: int, batch_size: int) -> Iterator[Batch]:
        assert self.source.shards is not None
        samples = islice(iter_set_samples(self.source.shards), count)
        labelled = self.source.shards.has_labels
        while chunk := list(islice(samples, batch_size)):
            images = np.stack([image for image, _ in chunk])
            labels = np.array([label for _, label in chunk], dtype=np.int64) if labelled else None
            yield images, labels
