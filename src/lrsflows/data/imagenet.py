"""Oord et al.'s downsampled ImageNet 32x32 / 64x64: PNG folders, or NSF's uint8 .npy pair for 64x64 (§1.7).

No labels; the official "valid" set is the test set. Files are read lazily: 1.28 M images stay on disk.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from .download import imagenet_instructions, refetch_advice
from .errors import DataError
from .image_datasets import NpyImages, PngFolderImages
from .specs import dataset_spec


def open_imagenet(name: str, data_dir: Path) -> tuple[Dataset, Dataset]:
    """Train and test datasets from the first (train, test) pair of the spec's sources whose two paths both exist.

    Order tried: imagenet64 only: imagenet64_fast/{train,valid}_64x64.npy; then <name>/train + <name>/val
    (NSF/LRS); then <name>/train_SxS + <name>/valid_SxS (the Oord tars unpacked). Test = Oord's valid set.
    """
    spec = dataset_spec(name)
    for train, test in spec.sources:
        if (data_dir / train).exists() and (data_dir / test).exists():
            kind = NpyImages if train.endswith(".npy") else PngFolderImages
            advice = refetch_advice(name, data_dir)
            return kind(data_dir / train, spec.shape, advice), kind(data_dir / test, spec.shape, advice)
    tried = ", ".join(f"{data_dir / train} + {data_dir / test}" for train, test in spec.sources)
    raise DataError(f"{name} not found: looked for {tried}; {imagenet_instructions(name, data_dir)}")
