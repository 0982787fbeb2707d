"""One way to get any dataset's train/val/test tensors: tabular files from the data root, 2-D densities from a seed."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .tabular import load_tabular
from .toy2d import density


@dataclass
class Splits:
    """float32 tensors of shape [N, D]; `true_log_prob` is the exact log-density where one is known (2-D data)."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    true_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def features(self) -> int:
        return self.train.shape[1]

    def to(self, device: torch.device, dtype: torch.dtype = torch.float32) -> "Splits":
        moved = (split.to(device, dtype) for split in (self.train, self.val, self.test))
        return Splits(*moved, self.true_log_prob)


def load_splits(
    name: str, kind: str, data_dir: str | Path, num_train: int, num_val: int, num_test: int, seed: int
) -> Splits:
    """The splits of dataset `name`: read (tabular) or drawn from one seeded generator, train then val then test (toy2d)."""
    if kind == "tabular":
        train, val, test = (torch.from_numpy(split) for split in load_tabular(name, data_dir))
        return Splits(train, val, test)
    source = density(name)
    generator = torch.Generator().manual_seed(seed)
    train, val, test = (source.sample(size, generator) for size in (num_train, num_val, num_test))
    return Splits(train, val, test, source.log_prob if source.has_log_prob else None)
