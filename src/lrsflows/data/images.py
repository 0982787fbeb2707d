"""The image datasets as train / validation / test datasets of raw uint8 images, split as NSF and LRS do.

Test is the official test set (ImageNet: Oord's "valid" set). Validation is a seeded random fraction
of the official training set (docs/datasets.md §Images); its indices are returned so a run can record them.
Readers: cifar10.py, mnist.py, imagenet.py; item types: image_datasets.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from .cifar10 import read_cifar10
from .errors import DataError
from .image_datasets import TensorImages
from .imagenet import open_imagenet
from .mnist import read_mnist
from .specs import dataset_names, dataset_spec


def _in_memory(read: Callable[[Path], tuple[torch.Tensor, torch.Tensor]]) -> Callable[[Path], tuple[Dataset, Dataset]]:
    """A reader of uint8 tensors as datasets: CIFAR-10 and MNIST are small enough to hold in memory."""
    return lambda root: tuple(TensorImages(images) for images in read(root))


# Each image dataset's reader: the data root -> its official (train, test) datasets. Its spec is in specs.py.
READERS: dict[str, Callable[[Path], tuple[Dataset, Dataset]]] = {
    "mnist": _in_memory(read_mnist),
    "cifar10": _in_memory(read_cifar10),
    "imagenet32": partial(open_imagenet, "imagenet32"),
    "imagenet64": partial(open_imagenet, "imagenet64"),
}


@dataclass
class ImageSplits:
    """Datasets whose item is a uint8 tensor (C, H, W); val_indices index the official training set."""

    train: Dataset
    val: Dataset
    test: Dataset
    val_indices: np.ndarray
    shape: tuple[int, int, int]


def load_image_splits(name: str, data_dir: str | Path, valid_frac: float, seed: int) -> ImageSplits:
    """Read dataset `name` from the data root and split its training set with a generator seeded by `seed`.

    The layouts each reader accepts, in the order it tries them, are the spec's sources (specs.py).
    Train and validation are Subsets of the official training set, train in
    the permutation's order (the original iterates it unshuffled in that fixed order).
    """
    if name not in dataset_names("image"):
        raise DataError(f"unknown image dataset {name!r}; choose one of {', '.join(dataset_names('image'))}.")
    if not 0 < valid_frac < 1:
        raise DataError(
            f"dataset.valid_frac is {valid_frac}, but the validation split needs a fraction of the {name} training set "
            "strictly between 0 and 1; set dataset.valid_frac to e.g. 0.02 (LRS) or 0.01 (NSF)."
        )
    root = Path(data_dir).expanduser().absolute()
    spec = dataset_spec(name)
    official_train, test = READERS[name](root)
    train_indices, val_indices = split_training_set(len(official_train), valid_frac, seed, spec.validation_first)
    if val_indices.size == 0:
        raise DataError(
            f"dataset.valid_frac {valid_frac} of the {len(official_train)} {name} training images under {root} is "
            "less than one image; raise dataset.valid_frac or use the full training set."
        )
    return ImageSplits(
        Subset(official_train, train_indices), Subset(official_train, val_indices), test, val_indices, spec.shape
    )


def split_training_set(
    size: int, valid_frac: float, seed: int, validation_first: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices (int64) from one torch.randperm(size) drawn with a generator seeded by `seed`.

    floor(valid_frac * size) indices go to validation: the permutation's first ones when
    `validation_first` (NSF/LRS CIFAR-10 and MNIST), else its last ones, which is exactly
    torch.utils.data.random_split(range(size), (size - n_val, n_val), generator) (NSF/LRS ImageNet).
    """
    n_val = math.floor(valid_frac * size)
    permutation = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).numpy()
    if validation_first:
        return permutation[n_val:], permutation[:n_val]
    return permutation[: size - n_val], permutation[size - n_val :]
