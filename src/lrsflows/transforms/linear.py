"""Linear mixing layers between flow steps: permutations and LU-parameterised maps (docs/architectures.md §Linear layers)."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import Transform

# raw diagonal such that softplus(raw) + DIAGONAL_FLOOR == 1 (identity initialisation).
DIAGONAL_FLOOR = 1e-3
_IDENTITY_RAW_DIAGONAL = math.log(math.expm1(1.0 - DIAGONAL_FLOOR))


class Permutation(Transform):
    """Reorders features along `dim` (1 = features of a vector, channels of an image); log-det 0."""

    def __init__(self, permutation: torch.Tensor, dim: int = 1):
        super().__init__()
        self.dim = dim
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward(self, inputs, context=None):
        return inputs.index_select(self.dim, self.permutation), inputs.new_zeros(inputs.shape[0])

    def inverse(self, inputs, context=None):
        return inputs.index_select(self.dim, self.inverse_permutation), inputs.new_zeros(inputs.shape[0])


class RandomPermutation(Permutation):
    """A fixed permutation drawn from torch's global generator at construction (seed it for reproducibility)."""

    def __init__(self, features: int, dim: int = 1):
        super().__init__(torch.randperm(features), dim)


class LULinear(Transform):
    """z = W x + b with W = L U: L unit lower-triangular, U upper-triangular with diagonal softplus(raw) + 1e-3.

    Acts on dim 1 and at every position of any further dims, so it also serves as the 1x1
    convolution of image flows (log-det times the number of positions). Initialised to the identity.
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = features
        rows, cols = torch.tril_indices(features, features, offset=-1)
        self.register_buffer("lower_index", torch.stack([rows, cols]))
        self.register_buffer("upper_index", torch.stack([cols, rows]))
        num_off_diagonal = features * (features - 1) // 2
        self.lower_entries = nn.Parameter(torch.zeros(num_off_diagonal))
        self.upper_entries = nn.Parameter(torch.zeros(num_off_diagonal))
        self.raw_diagonal = nn.Parameter(torch.full((features,), _IDENTITY_RAW_DIAGONAL))
        self.bias = nn.Parameter(torch.zeros(features))

    def _factors(self):
        diagonal = F.softplus(self.raw_diagonal) + DIAGONAL_FLOOR
        lower = torch.eye(self.features, dtype=diagonal.dtype, device=diagonal.device)
        lower = lower.index_put(tuple(self.lower_index), self.lower_entries)
        upper = torch.diag(diagonal).index_put(tuple(self.upper_index), self.upper_entries)
        return lower, upper, diagonal

    def _logabsdet(self, inputs, diagonal):
        positions = inputs[0, 0].numel()
        return torch.log(diagonal).sum().mul(positions).expand(inputs.shape[0])

    def forward(self, inputs, context=None):
        lower, upper, diagonal = self._factors()
        flat = inputs.movedim(1, -1)
        outputs = flat @ (lower @ upper).T + self.bias
        return outputs.movedim(-1, 1), self._logabsdet(inputs, diagonal)

    def inverse(self, inputs, context=None):
        lower, upper, diagonal = self._factors()
        flat = (inputs.movedim(1, -1) - self.bias).reshape(-1, self.features)
        # Row-vector form: solve y = x U^T L^T from the right, one triangular solve per factor.
        solved = torch.linalg.solve_triangular(lower.T, flat, upper=True, left=False, unitriangular=True)
        solved = torch.linalg.solve_triangular(upper.T, solved, upper=False, left=False)
        outputs = solved.reshape(inputs.movedim(1, -1).shape).movedim(-1, 1)
        return outputs, -self._logabsdet(inputs, diagonal)


class OneByOneConvolution(Transform):
    """Glow's invertible 1x1 convolution as NSF builds it: a fixed random channel permutation, then LU."""

    def __init__(self, channels: int):
        super().__init__()
        self.permutation = RandomPermutation(channels, dim=1)
        self.linear = LULinear(channels)

    def forward(self, inputs, context=None):
        permuted, _ = self.permutation(inputs)
        return self.linear(permuted)

    def inverse(self, inputs, context=None):
        outputs, logabsdet = self.linear.inverse(inputs)
        return self.permutation.inverse(outputs)[0], logabsdet
