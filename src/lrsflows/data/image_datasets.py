"""Map-style datasets whose item is one raw image: a uint8 tensor (C, H, W), no label, no float conversion.

Dequantisation, flips and float conversion happen on the training side from its own saved RNG, so
these only read pixels. All three pickle cheaply for DataLoader workers (fork or spawn): the
in-memory tensor travels as it is, the memory-mapped array and the PNG folder travel as a path
(plus one compact array of file names) and reopen their files in the worker.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .errors import DataError


class TensorImages(Dataset):
    """Images held in memory as one uint8 tensor (N, C, H, W): CIFAR-10 and MNIST are small enough."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index].clone()  # a copy: a view would carry the whole storage when pickled


class NpyImages(Dataset):
    """A uint8 (N, C, H, W) .npy file read through a memory map: NSF's ImageNet64 "fast" files are 15 GB."""

    def __init__(self, path: Path, shape: tuple[int, int, int], advice: str):
        """Check the header now (dtype and image shape; `advice` ends the error), map the data lazily."""
        try:
            self._images = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise DataError(f"{path} is not a readable NumPy array ({error}); {advice}") from None
        found = self._images.shape
        if self._images.dtype != np.uint8 or len(found) != 4 or found[1:] != shape:
            raise DataError(
                f"{path} holds {self._images.dtype} images of shape {found} where uint8 images of shape "
                f"(N, {', '.join(map(str, shape))}) are expected; {advice}"
            )
        self.path = path
        self.length = found[0]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._images is None:
            self._images = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return torch.from_numpy(np.array(self._images[index]))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None}  # the path travels; pickling the map would copy every byte


class PngFolderImages(Dataset):
    """The PNG files of one folder in sorted name order (as NSF reads them), decoded per item, converted to RGB."""

    def __init__(self, folder: Path, shape: tuple[int, int, int], advice: str):
        """List the folder and decode its first image now, so a wrong resolution fails at start-up, not mid-training."""
        names = sorted(entry.name for entry in os.scandir(folder) if entry.name.lower().endswith(".png"))
        if not names:
            raise DataError(f"{folder} holds no .png images; {advice}")
        self.folder = folder
        self.names = np.array([os.fsencode(name) for name in names])  # one compact array, not 1.28 M str objects
        self.shape = shape
        self.advice = advice
        self[0]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.folder / os.fsdecode(self.names[index])
        try:
            with Image.open(path) as image:
                size = image.size
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as error:
            raise DataError(f"{path} cannot be read as an image ({error}); {self.advice}") from None
        height, width = self.shape[1:]
        if size != (width, height):
            raise DataError(
                f"{path} is a {size[0]}x{size[1]} image where {width}x{height} images are expected; {self.folder} "
                f"holds the wrong resolution, so replace its files with the {width}x{height} ones."
            )
        return torch.from_numpy(pixels.transpose(2, 0, 1).copy())
