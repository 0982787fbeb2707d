"""MNIST images from the IDX files (raw or gzip), read without torchvision (docs/datasets.md §Images)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from .download import download_command, refetch_advice
from .errors import DataError
from .specs import dataset_spec

SPEC = dataset_spec("mnist")
LAYOUTS = tuple(layout for (layout,) in SPEC.sources)
TRAIN_IMAGES = "train-images-idx3-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
IMAGES_MAGIC = 0x00000803
HEADER = struct.Struct(">IIII")  # magic, count, rows, cols: big-endian
SIDE = SPEC.shape[-1]


def read_mnist(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The official train and test (t10k) images as uint8 tensors (N, 1, 28, 28).

    Layouts tried in this order, the first holding both image files wins: <root>/mnist/MNIST/raw/
    (torchvision's, LRS), then <root>/mnist/; each file raw or with .gz, the raw one first.
    """
    for layout in LAYOUTS:
        files = [_idx_file(data_dir / layout, name) for name in (TRAIN_IMAGES, TEST_IMAGES)]
        if all(files):
            advice = refetch_advice("mnist", data_dir)
            train, test = (read_idx_images(path, advice) for path in files)
            return train, test
    tried = " or ".join(str(data_dir / layout) for layout in LAYOUTS)
    raise DataError(
        f"MNIST not found: expected {TRAIN_IMAGES} and {TEST_IMAGES} (raw or .gz) in {tried}; run "
        f"{download_command('mnist', data_dir)} (downloads and MD5-checks the four files) or point "
        "paths.data_dir / LRSFLOWS_DATA_DIR at the folder that holds them."
    )


def _idx_file(folder: Path, name: str) -> Path | None:
    return next((path for path in (folder / name, folder / f"{name}.gz") if path.is_file()), None)


def read_idx_images(path: Path, advice: str) -> torch.Tensor:
    """An IDX image file as uint8 (count, 1, 28, 28), its magic number, image size and length checked against the header."""
    try:
        payload = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path} cannot be read ({error}); {advice}") from None
    if len(payload) < HEADER.size:
        raise DataError(f"{path} has {len(payload)} bytes, fewer than an IDX header's {HEADER.size}; {advice}")
    magic, count, rows, cols = HEADER.unpack_from(payload)
    if magic != IMAGES_MAGIC:
        raise DataError(
            f"{path} starts with 0x{magic:08x}, not the IDX image magic number 0x{IMAGES_MAGIC:08x}; {advice}"
        )
    if (rows, cols) != (SIDE, SIDE):
        raise DataError(f"{path} holds {rows}x{cols} images where MNIST's are {SIDE}x{SIDE}; {advice}")
    expected = HEADER.size + count * rows * cols
    if len(payload) != expected:
        raise DataError(
            f"{path} has {len(payload)} bytes where its header ({count} images of {rows}x{cols}) needs {expected}; {advice}"
        )
    images = np.frombuffer(payload, dtype=np.uint8, offset=HEADER.size).reshape(count, 1, rows, cols)
    return torch.from_numpy(images.copy())
