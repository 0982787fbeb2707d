"""Fixed element-wise maps from pixel values to an image flow's working range (docs/architectures.md §Image flows).

Their log-dets belong to the density, so bits/dim are in pixel units.
"""

import math

import torch
from torch.nn import functional as F

from .base import Transform, sum_except_batch


class AffineScalar(Transform):
    """x -> x * scale + shift with constants, e.g. 'glow' preprocessing x / 2^n - 0.5; log-det D log|scale|."""

    def __init__(self, scale: float = 1.0, shift: float = 0.0):
        super().__init__()
        if scale == 0:
            raise ValueError("AffineScalar needs a non-zero scale to be invertible.")
        self.scale = float(scale)
        self.shift = float(shift)

    def _logabsdet(self, inputs):
        return inputs.new_full((inputs.shape[0],), math.prod(inputs.shape[1:]) * math.log(abs(self.scale)))

    def forward(self, inputs, context=None):
        return inputs * self.scale + self.shift, self._logabsdet(inputs)

    def inverse(self, inputs, context=None):
        return (inputs - self.shift) / self.scale, -self._logabsdet(inputs)


class Logit(Transform):
    """x in (0, 1) -> log(x / (1 - x)), RealNVP's map of squashed pixels to an unbounded space.

    As nflows, inputs are clamped to [eps, 1 - eps] first so a dequantised pixel that rounds to 0
    or 1 gives a finite value.
    """

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, inputs, context=None):
        inputs = inputs.clamp(self.eps, 1 - self.eps)
        outputs = torch.log(inputs) - torch.log1p(-inputs)
        return outputs, -sum_except_batch(torch.log(inputs) + torch.log1p(-inputs))

    def inverse(self, inputs, context=None):
        return torch.sigmoid(inputs), sum_except_batch(F.logsigmoid(inputs) + F.logsigmoid(-inputs))
