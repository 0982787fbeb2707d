"""CIFAR-10, python version: the pickled batches of the Toronto archive, read without torchvision.

torchvision's class checks every batch's MD5 when constructed, so neither small test fixtures nor a
copy that is fine but re-pickled would pass it; this reads the same files (docs/datasets.md §Images).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from . import pickles
from .download import download_command, refetch_advice
from .errors import DataError
from .specs import dataset_spec

SPEC = dataset_spec("cifar10")
TRAIN_BATCHES = tuple(f"data_batch_{number}" for number in range(1, 6))
TEST_BATCH = "test_batch"
ROW_VALUES = math.prod(SPEC.shape)


def read_cifar10(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The official train (data_batch_1..5, in order) and test images as uint8 tensors (N, 3, 32, 32).

    Layouts tried in this order, the first holding all six batches wins: <root>/cifar-10/cifar-10-batches-py/
    (NSF/LRS, torchvision's root), then <root>/cifar-10-batches-py/ (the tarball extracted in place).
    """
    batches = TRAIN_BATCHES + (TEST_BATCH,)
    layouts = [data_dir / layout for (layout,) in SPEC.sources]
    folder = next((layout for layout in layouts if all((layout / name).is_file() for name in batches)), None)
    if folder is None:
        tried = " or ".join(map(str, layouts))
        raise DataError(
            f"CIFAR-10 not found: expected data_batch_1..5 and test_batch in {tried}; run "
            f"{download_command('cifar10', data_dir)} (downloads and MD5-checks the Toronto archive) or point "
            "paths.data_dir / LRSFLOWS_DATA_DIR at the folder that holds them."
        )
    advice = refetch_advice("cifar10", data_dir)
    train = torch.cat([read_batch(folder / name, advice) for name in TRAIN_BATCHES])
    return train, read_batch(folder / TEST_BATCH, advice)


def read_batch(path: Path, advice: str) -> torch.Tensor:
    """One batch's images: each row of its `data` is the red, then green, then blue 32x32 plane, row-major.

    A batch is a pickled dict, so it is unpickled resolving only numpy's array reconstruction (pickles.NUMPY_ARRAY):
    a file placed in the data root that names anything else is refused, not run. latin1 decodes the official
    batches' Python 2 str keys and array bytes unchanged; a re-pickled batch may have bytes keys instead.
    """
    try:
        batch = pickles.load(path, pickles.NUMPY_ARRAY, encoding="latin1")
    except pickles.RefusedGlobal as error:
        raise error.data_error(path, "CIFAR-10 batch", advice) from None
    except Exception as error:  # a damaged pickle fails with many different exception types
        raise DataError(
            f"{path} is not a readable CIFAR-10 batch ({type(error).__name__}: {error}); {advice}"
        ) from None
    data = batch.get("data", batch.get(b"data")) if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray):
        raise DataError(f"{path} has no `data` array, so it is not a CIFAR-10 python batch; {advice}")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_VALUES:
        raise DataError(
            f"{path} holds {data.dtype} data of shape {data.shape} where uint8 rows of 3x32x32 values, shape "
            f"(n, {ROW_VALUES}), are expected; {advice}"
        )
    return torch.from_numpy(np.ascontiguousarray(data).reshape(-1, *SPEC.shape))
