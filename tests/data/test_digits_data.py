"""The built-in digits: pixel mapping, labels, split, resize, and the dataset items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from impl.data import ImageDataset, digits_split, load_data, load_digits_arrays
from impl.data.digits import digits_grey_levels_to_pixels

# round(v * 255 / 16), half up, worked out by hand for v = 0..16 (only v = 8 -> 127.5 is a half).
EXPECTED_LEVELS = [0, 16, 32, 48, 64, 80, 96, 112, 128, 143, 159, 175, 191, 207, 223, 239, 255]


def test_grey_level_mapping_is_the_documented_table() -> None:
    pixels = digits_grey_levels_to_pixels(np.arange(17, dtype=np.float64))
    assert pixels.dtype == np.uint8
    assert pixels.tolist() == EXPECTED_LEVELS


def test_grey_level_mapping_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="levels"):
        digits_grey_levels_to_pixels(np.array([17.0]))
    with pytest.raises(ValueError, match="levels"):
        digits_grey_levels_to_pixels(np.array([2.5]))


def test_digits_arrays_shape_values_labels() -> None:
    images, labels = load_digits_arrays()
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert set(np.unique(images).tolist()) <= set(EXPECTED_LEVELS)
    assert np.unique(images).size == 17
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_arrays_are_fresh_copies() -> None:
    images, _ = load_digits_arrays()
    images[0] = 7
    again, _ = load_digits_arrays()
    assert not np.all(again[0] == 7)


def test_load_data_digits_defaults() -> None:
    ds = load_data()
    assert isinstance(ds, ImageDataset)
    assert len(ds) == 1797
    assert (ds.image_size, ds.channels, ds.num_classes) == (8, 1, 10)
    assert ds.class_names == tuple("0123456789")
    assert ds.labels is not None and ds.labels.dtype == np.int64


def test_item_is_pixels_over_127_5_minus_1() -> None:
    ds = load_data()
    x, y = ds[5]
    assert x.dtype == torch.float32 and x.shape == (1, 8, 8)
    expected = ds.images[5, :, :, 0].astype(np.float64) / 127.5 - 1.0
    np.testing.assert_allclose(x[0].numpy(), expected, rtol=0, atol=6e-8)  # one float32 rounding of <= 1
    assert ds.labels is not None
    assert y == int(ds.labels[5])
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0


def test_split_is_deterministic_disjoint_complete_and_stratified() -> None:
    a, b = digits_split(0), digits_split(0)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.held_out, b.held_out)
    assert np.intersect1d(a.train, a.held_out).size == 0
    np.testing.assert_array_equal(np.union1d(a.train, a.held_out), np.arange(1797))
    _, labels = load_digits_arrays()
    per_class = np.bincount(labels[a.held_out], minlength=10)
    totals = np.bincount(labels, minlength=10)
    assert np.all(np.abs(per_class - 0.2 * totals) <= 0.5)
    other = digits_split(1)
    assert not np.array_equal(other.held_out, a.held_out)


def test_split_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="held_out_fraction"):
        digits_split(0, held_out_fraction=1.0)
    with pytest.raises(ValueError, match="seed"):
        digits_split(-1)


def test_digits_train_and_held_out_specs() -> None:
    split = digits_split()
    train, held = load_data("digits:train"), load_data("digits:held_out")
    assert (len(train), len(held)) == (split.train.size, split.held_out.size)
    images, _ = load_digits_arrays()
    np.testing.assert_array_equal(held.images, images[split.held_out])
    with pytest.raises(ValueError, match="digits:test"):
        load_data("digits:test")


@pytest.mark.parametrize("size", [16, 32])
def test_digits_upscaled(size: int) -> None:
    ds = load_data("digits:held_out", image_size=size)
    assert ds.images.shape == (359, size, size, 1) and ds.image_size == size
    # Bilinear enlarging never leaves the range of its inputs.
    assert ds.images.max() <= 255 and ds.images.min() >= 0
    small = load_data("digits:held_out")
    assert np.all(ds.images.max(axis=(1, 2, 3)) <= small.images.max(axis=(1, 2, 3)))


def test_digits_channels_3() -> None:
    ds = load_data("digits:held_out", channels=3)
    assert ds.channels == 3
    np.testing.assert_array_equal(ds.images[..., 0], ds.images[..., 2])


def test_unknown_spec_and_missing_path() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_data("/nonexistent/place/for/images")
    with pytest.raises(ValueError, match="image_size"):
        load_data("digits", image_size=0)
    with pytest.raises(ValueError, match="channels"):
        load_data("digits", channels=2)
