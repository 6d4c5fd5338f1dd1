"""Name -> dataset: the single entry point :func:`load_dataset`, one :class:`ImageDataset` entry
per image dataset (``IMAGE_DATASETS``), and the ``DATASETS`` table of every accepted name."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .array_dataset import ArrayDataset, _subset
from .digits import load_digits_arrays
from .image_folder import load_image_folder
from .paths import resolve_root
from .torchvision_sets import load_celeba64, load_cifar10, load_mnist_like
from .toy2d import TOY2D, toy2d

IMAGE_FOLDER_PREFIX = "image_folder:"

TOY_DEFAULT_N = 100_000
"""Points drawn for a toy dataset when ``n`` is not given."""

TOY_TEST_SEED_OFFSET = 1_000_003
"""A toy test split uses ``seed + TOY_TEST_SEED_OFFSET`` so it is independent of the train one."""


@dataclass(frozen=True)
class ImageDataset:
    """One image dataset of the registry: what it is and how it loads.

    ``load(root, train, download, image_size)`` returns ``(x, y, num_classes)``: ``uint8
    [N, C, H, W]`` images, their labels and the number of classes. ``features`` names the
    features of its Frechet distance when evaluation is left to choose (``"classifier"``: the
    package's small classifier trained on it, "FD (classifier)"; ``"inception"``: FID).
    """

    description: str
    load: Callable[..., tuple[torch.Tensor, torch.Tensor, int]]
    features: str = "inception"


def _digits(root, train, download, image_size):
    return (*load_digits_arrays(train=train, image_size=image_size), 10)


def _mnist_like(name: str):
    def load(root, train, download, image_size):
        return load_mnist_like(name, resolve_root(root), train, download, image_size)

    return load


IMAGE_DATASETS: dict[str, ImageDataset] = {
    "digits": ImageDataset(
        "scikit-learn's bundled 8x8 handwritten digits (offline): 1,437 train / 360 test, "
        "uint8 [1, 8, 8] (image_size resizes, e.g. 16), 10 classes",
        _digits,
        features="classifier",
    ),
    "mnist": ImageDataset(
        "MNIST handwritten digits (torchvision): 60,000 train / 10,000 test, [1, 28, 28], "
        "10 classes",
        _mnist_like("mnist"),
        features="classifier",
    ),
    "fashion_mnist": ImageDataset(
        "Fashion-MNIST clothing (torchvision, or offline from the Debian package "
        "dataset-fashion-mnist): 60,000 train / 10,000 test, [1, 28, 28], 10 classes",
        _mnist_like("fashion_mnist"),
        features="classifier",
    ),
    "cifar10": ImageDataset(
        "CIFAR-10 (torchvision): 50,000 train / 10,000 test, [3, 32, 32], 10 classes",
        lambda root, train, download, image_size: load_cifar10(
            resolve_root(root), train, download, image_size
        ),
    ),
    "celeba64": ImageDataset(
        "CelebA aligned faces (torchvision), center-cropped to 178 and resized to 64: "
        "162,770 train / 19,962 test, [3, 64, 64], unconditional (0 classes)",
        lambda root, train, download, image_size: load_celeba64(
            resolve_root(root), train, download, image_size
        ),
    ),
}
"""The image datasets by name: one entry each (a new one is one entry here)."""

IMAGE_FOLDER_DESCRIPTION = (
    "every image under PATH (recursive), center-cropped and resized to image_size "
    "(required): [C, S, S] with C = 1 if all grayscale else 3; classes = first-level "
    "subfolders, else unconditional (0 classes); no train/test split"
)

DATASETS: dict[str, str] = {
    **{
        name: f"2D toy: {desc}; float32 [n, 2] points, generated from a seed, no classes"
        for name, (_, desc) in TOY2D.items()
    },
    **{name: entry.description for name, entry in IMAGE_DATASETS.items()},
    IMAGE_FOLDER_PREFIX + "PATH": IMAGE_FOLDER_DESCRIPTION,
}
"""Every accepted dataset name -> one-line description (shape, split sizes, classes)."""


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    train: bool = True,
    image_size: int | None = None,
    n: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> ArrayDataset:
    """Load dataset ``name`` (a key of ``DATASETS``) fully into memory.

    Args:
        name: a toy name, ``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``, ``celeba64`` or
            ``image_folder:PATH``.
        root: folder for downloaded datasets; default ``$SHORTCUT_MINI_DATA`` or
            ``~/.cache/shortcut_mini/data``.
        train: training split (``False``: test split; toys use an independent seed; ignored for
            ``image_folder``, which has no split).
        image_size: resize images to ``image_size`` x ``image_size`` (bilinear); required for
            ``image_folder``, not allowed for toys.
        n: toys: number of points (default ``TOY_DEFAULT_N``); images: keep a seeded random
            subset of ``n`` examples (``None`` keeps all).
        seed: seed of the toy points and of the ``n``-subset.
        download: let torchvision download missing datasets.

    Raises:
        ValueError: unknown ``name`` or invalid arguments.
        DatasetUnavailableError: the data is neither on disk nor downloadable.
    """
    if name in TOY2D:
        if image_size is not None:
            raise ValueError(f"image_size is not used by the 2D toy dataset {name!r}")
        points = toy2d(
            name,
            TOY_DEFAULT_N if n is None else n,
            seed if train else seed + TOY_TEST_SEED_OFFSET,
        )
        labels = torch.zeros(points.shape[0], dtype=torch.long)
        return ArrayDataset(points, labels, num_classes=0, kind="points", name=name)

    if name in IMAGE_DATASETS:
        x, y, num_classes = IMAGE_DATASETS[name].load(root, train, download, image_size)
    elif name.startswith(IMAGE_FOLDER_PREFIX) and len(name) > len(IMAGE_FOLDER_PREFIX):
        x, y, num_classes = load_image_folder(name[len(IMAGE_FOLDER_PREFIX) :], image_size)
    else:
        raise ValueError(f"unknown dataset name={name!r}; valid names: {', '.join(DATASETS)}")

    if n is not None:
        x, y = _subset(x, y, n, seed)
    return ArrayDataset(x, y, num_classes=num_classes, kind="image", name=name)
