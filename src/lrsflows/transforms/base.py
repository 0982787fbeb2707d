"""Invertible maps data -> noise that also return log|det J| per example (nflows' Transform split)."""

import torch
from torch import nn


def sum_except_batch(values: torch.Tensor) -> torch.Tensor:
    """Per-example total of element-wise log-derivatives."""
    return values.reshape(values.shape[0], -1).sum(dim=1)


class Transform(nn.Module):
    """forward(x, context) -> (z, logabsdet); inverse(z, context) -> (x, logabsdet of the inverse map)."""

    def forward(self, inputs: torch.Tensor, context: torch.Tensor | None = None):
        raise NotImplementedError

    def inverse(self, inputs: torch.Tensor, context: torch.Tensor | None = None):
        raise NotImplementedError


class CompositeTransform(Transform):
    """Applies its transforms in order (inverse: reverse order) and sums their log-determinants."""

    def __init__(self, transforms):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, inputs, context=None):
        return self._run(inputs, context, self.transforms, "forward")

    def inverse(self, inputs, context=None):
        return self._run(inputs, context, reversed(self.transforms), "inverse")

    @staticmethod
    def _run(inputs, context, transforms, direction):
        total = inputs.new_zeros(inputs.shape[0])
        for transform in transforms:
            inputs, logabsdet = getattr(transform, direction)(inputs, context)
            total = total + logabsdet
        return inputs, total


class InverseTransform(Transform):
    """Swaps a transform's directions (e.g. to use a cheap-inverse layer for sampling)."""

    def __init__(self, transform: Transform):
        super().__init__()
        self.transform = transform

    def forward(self, inputs, context=None):
        return self.transform.inverse(inputs, context)

    def inverse(self, inputs, context=None):
        return self.transform(inputs, context)
