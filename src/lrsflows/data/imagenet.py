"""Oord et al.'s downsampled ImageNet 32x32 / 64x64: PNG folders, or NSF's uint8 .npy pair for 64x64 (§1.7).

No labels; the official "valid" set is the test set. Files are read lazily: 1.28 M images stay on disk.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from .download import imagenet_instructions, refetch_advice
from .errors import DataError
from .image_datasets import NpyImages, PngFolderImages

# (train, test) relative to the data root, in the order tried: NSF's fast .npy pair, NSF's renamed folders, Oord's tars.
LAYOUTS = {
    "imagenet32": (("imagenet32/train", "imagenet32/val"), ("imagenet32/train_32x32", "imagenet32/valid_32x32")),
    "imagenet64": (
        ("imagenet64_fast/train_64x64.npy", "imagenet64_fast/valid_64x64.npy"),
        ("imagenet64/train", "imagenet64/val"),
        ("imagenet64/train_64x64", "imagenet64/valid_64x64"),
    ),
}


def open_imagenet(name: str, data_dir: Path, shape: tuple[int, int, int]) -> tuple[Dataset, Dataset]:
    """Train and test datasets from the first layout of LAYOUTS[name] whose two paths both exist.

    Order tried: imagenet64 only: imagenet64_fast/{train,valid}_64x64.npy; then <name>/train + <name>/val
    (NSF/LRS); then <name>/train_SxS + <name>/valid_SxS (the Oord tars unpacked). Test = Oord's valid set.
    """
    for train, test in LAYOUTS[name]:
        if (data_dir / train).exists() and (data_dir / test).exists():
            kind = NpyImages if train.endswith(".npy") else PngFolderImages
            advice = refetch_advice(name, data_dir)
            return kind(data_dir / train, shape, advice), kind(data_dir / test, shape, advice)
    tried = ", ".join(f"{data_dir / train} + {data_dir / test}" for train, test in LAYOUTS[name])
    raise DataError(f"{name} not found: looked for {tried}; {imagenet_instructions(name, data_dir)}")
