"""Datasets for shortcut-mini: 2D toys, sklearn digits, torchvision image sets, image folders.

Everything is loaded into memory as an :class:`ArrayDataset` (images as ``uint8 [N, C, H, W]``,
mapped to ``[-1, 1]`` per batch). See ``DATASETS`` for every accepted name.
"""

from .array_dataset import ArrayDataset
from .digits import digits_split_indices, load_digits_arrays
from .errors import DatasetError, DatasetUnavailableError
from .image_folder import load_image_folder
from .paths import DATA_ENV_VAR, default_data_root
from .registry import DATASETS, IMAGE_DATASETS, ImageDataset, load_dataset
from .resize import resize_uint8
from .torchvision_sets import install_debian_fashion_mnist
from .toy2d import TOY2D, toy2d

__all__ = [
    "DATASETS",
    "DATA_ENV_VAR",
    "IMAGE_DATASETS",
    "TOY2D",
    "ArrayDataset",
    "DatasetError",
    "DatasetUnavailableError",
    "ImageDataset",
    "default_data_root",
    "digits_split_indices",
    "install_debian_fashion_mnist",
    "load_dataset",
    "load_digits_arrays",
    "load_image_folder",
    "resize_uint8",
    "toy2d",
]
