"""ImageDataset: validation, labels, and reproducible random flips (also through DataLoader workers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from impl.data import ImageDataset


def _asymmetric_images(n: int) -> np.ndarray:
    """Images whose left half is dark and right half bright, so a flip is visible."""
    images = np.zeros((n, 4, 4, 1), dtype=np.uint8)
    images[:, :, 2:, :] = 200
    images[:, 0, 0, 0] = np.arange(n, dtype=np.uint8)  # tag each image
    return images


def test_without_flip_items_are_unflipped_and_labels_default_to_zero() -> None:
    ds = ImageDataset(_asymmetric_images(3))
    x, y = ds[1]
    assert y == 0 and ds.labels is None and ds.num_classes is None
    assert float(x[0, 0, 3]) == pytest.approx(200 / 127.5 - 1)
    assert not any(ds.flips(i) for i in range(3))


def test_flip_is_a_left_right_mirror_and_happens_about_half_the_time() -> None:
    n = 400
    ds = ImageDataset(_asymmetric_images(n), random_flip=True, flip_seed=3)
    flipped = 0
    for i in range(n):
        x, _ = ds[i]
        plain = torch.from_numpy(ds.images[i].transpose(2, 0, 1).astype(np.float32)) / 127.5 - 1
        if ds.flips(i):
            flipped += 1
            torch.testing.assert_close(x, torch.flip(plain, dims=(2,)), rtol=0, atol=0)
        else:
            torch.testing.assert_close(x, plain, rtol=0, atol=0)
    # Binomial(400, 1/2): sd 10; 5 sd either side.
    assert 150 <= flipped <= 250


def test_flips_depend_on_seed_epoch_index_only() -> None:
    a = ImageDataset(_asymmetric_images(64), random_flip=True, flip_seed=7)
    b = ImageDataset(_asymmetric_images(64), random_flip=True, flip_seed=7)
    first = [a.flips(i) for i in range(64)]
    torch.manual_seed(123)  # the global RNG plays no part
    assert [b.flips(i) for i in reversed(range(64))] == first[::-1]
    a.set_epoch(1)
    assert [a.flips(i) for i in range(64)] != first
    c = ImageDataset(_asymmetric_images(64), random_flip=True, flip_seed=8)
    assert [c.flips(i) for i in range(64)] != first


def test_flip_mask_matches_items() -> None:
    ds = ImageDataset(_asymmetric_images(10), random_flip=True, flip_seed=2)
    mask = ds.flip_mask(torch.tensor([3, 0, 7]))
    assert mask.dtype == torch.bool and mask.tolist() == [ds.flips(3), ds.flips(0), ds.flips(7)]


def test_dataloader_workers_reproduce_the_same_batches() -> None:
    ds = ImageDataset(_asymmetric_images(16), random_flip=True, flip_seed=1)
    ds.set_epoch(2)
    single = torch.cat([x for x, _ in DataLoader(ds, batch_size=4, num_workers=0)])
    multi = torch.cat([x for x, _ in DataLoader(ds, batch_size=4, num_workers=2)])
    torch.testing.assert_close(single, multi, rtol=0, atol=0)


def test_labels_and_num_classes() -> None:
    labels = np.array([0, 2, 1], dtype=np.int64)
    ds = ImageDataset(_asymmetric_images(3), labels)
    assert ds.num_classes == 3 and ds[1][1] == 2
    ds = ImageDataset(_asymmetric_images(3), labels, num_classes=5, class_names=list("abcde"))
    assert ds.num_classes == 5 and ds.class_names == tuple("abcde")


@pytest.mark.parametrize(
    ("images", "labels", "match"),
    [
        (np.zeros((2, 4, 4, 1), dtype=np.float32), None, "uint8"),
        (np.zeros((2, 4, 4), dtype=np.uint8), None, "4 dimensions"),
        (np.zeros((2, 4, 4, 2), dtype=np.uint8), None, "C in"),
        (np.zeros((2, 4, 5, 1), dtype=np.uint8), None, "square"),
        (np.zeros((0, 4, 4, 1), dtype=np.uint8), None, "at least one"),
        (np.zeros((2, 4, 4, 1), dtype=np.uint8), np.array([0, 1, 2]), "one entry per image"),
        (np.zeros((2, 4, 4, 1), dtype=np.uint8), np.array([0.0, 1.0]), "integer"),
        (np.zeros((2, 4, 4, 1), dtype=np.uint8), np.array([0, -1]), "non-negative"),
    ],
)
def test_bad_inputs_raise_value_error(images: np.ndarray, labels: np.ndarray | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ImageDataset(images, labels)


def test_bad_num_classes_and_index() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        ImageDataset(_asymmetric_images(2), np.array([0, 3]), num_classes=2)
    ds = ImageDataset(_asymmetric_images(2))
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(ValueError, match="epoch"):
        ds.set_epoch(-1)
