"""impl.data: digits, image folders and ``.npz`` files as ``ImageDataset``; atomic image writers."""

from impl.data.dataset import ImageDataset
from impl.data.digits import DigitsSplit, digits_split, load_digits_arrays
from impl.data.images import to_model_range
from impl.data.load import load_data
from impl.data.writers import image_grid, save_image_grid, save_npz_atomic

__all__ = [
    "DigitsSplit",
    "ImageDataset",
    "digits_split",
    "image_grid",
    "load_data",
    "load_digits_arrays",
    "save_image_grid",
    "save_npz_atomic",
    "to_model_range",
]
