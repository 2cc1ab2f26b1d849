"""impl.data: digits, image folders and ``.npz`` files as ``ImageDataset``; atomic image writers; the
streaming readers (``.npy``, lazy folders, tar shards), ``open_training_data``, ``OrderedImages`` (a set
read once in stored order, for ``nll_bound``) and ``prepare``
(docs/data.md)."""

from impl.data.dataset import ImageDataset
from impl.data.digits import DigitsSplit, digits_split, load_digits_arrays
from impl.data.images import to_model_range
from impl.data.lazy_folder import LazyImageFolder
from impl.data.load import load_data
from impl.data.npy import NpyImages
from impl.data.ordered import OrderedImages
from impl.data.prepare import prepare
from impl.data.shard_set import ShardSet, open_shard_set
from impl.data.training_source import TrainingData, open_training_data
from impl.data.writers import image_grid, save_image_grid, save_npz_atomic

__all__ = [
    "DigitsSplit",
    "ImageDataset",
    "LazyImageFolder",
    "NpyImages",
    "OrderedImages",
    "ShardSet",
    "TrainingData",
    "digits_split",
    "image_grid",
    "load_data",
    "load_digits_arrays",
    "open_shard_set",
    "open_training_data",
    "prepare",
    "save_image_grid",
    "save_npz_atomic",
    "to_model_range",
]
