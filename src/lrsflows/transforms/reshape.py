"""Parameter-free rearrangements around the learnt steps of image flows (docs/architectures.md §Image flows).

Squeeze and the multi-scale split rearrange pixels between levels, and Flatten hands the result to a
flat base density.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import Transform


class Squeeze(Transform):
    """Space-to-depth: [B, C, H, W] -> [B, C f^2, H/f, W/f] so couplings can mix neighbouring pixels.

    Output channel c f^2 + i f + j holds the pixel at offset (i, j) of each f x f block of channel c,
    the ordering of nflows' SqueezeTransform (and of pixel_unshuffle). Log-det 0.
    """

    def __init__(self, factor: int = 2):
        super().__init__()
        self.factor = factor

    def forward(self, inputs, context=None):
        if inputs.dim() != 4 or inputs.shape[2] % self.factor or inputs.shape[3] % self.factor:
            raise ValueError(
                f"Squeeze needs [B, C, H, W] inputs with H and W divisible by {self.factor}, "
                f"got shape {tuple(inputs.shape)}."
            )
        return F.pixel_unshuffle(inputs, self.factor), inputs.new_zeros(inputs.shape[0])

    def inverse(self, inputs, context=None):
        if inputs.dim() != 4 or inputs.shape[1] % self.factor**2:
            raise ValueError(
                f"Squeeze.inverse needs [B, C, H, W] inputs with C divisible by {self.factor**2}, "
                f"got shape {tuple(inputs.shape)}."
            )
        return F.pixel_shuffle(inputs, self.factor), inputs.new_zeros(inputs.shape[0])


class Flatten(Transform):
    """[B, *shape] -> [B, prod(shape)], so a single-scale image flow ends in a flat vector. Log-det 0."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, inputs, context=None):
        if tuple(inputs.shape[1:]) != self.shape:
            raise ValueError(f"Flatten expects inputs of shape [B, *{self.shape}], got {tuple(inputs.shape)}.")
        return inputs.reshape(inputs.shape[0], -1), inputs.new_zeros(inputs.shape[0])

    def inverse(self, inputs, context=None):
        return inputs.reshape((inputs.shape[0],) + self.shape), inputs.new_zeros(inputs.shape[0])


class MultiscaleComposite(Transform):
    """Glow/RealNVP multi-scale architecture with nflows' MultiscaleCompositeTransform semantics.

    After each level but the last, the level's output is halved along channels (torch.chunk: the
    first ceil(C/2) channels) and that half is factored out straight to the output, so deeper levels
    work on fewer dimensions. The output is the flat concatenation [B, C*H*W] of the factored-out
    parts in level order, then the last level's output. `level_output_shapes[i]` is the (C, H, W)
    that level i produces; the inverse needs it to cut the flat vector back into pieces.
    """

    def __init__(self, levels, level_output_shapes):
        super().__init__()
        if len(levels) != len(level_output_shapes) or not levels:
            raise ValueError("MultiscaleComposite needs one output shape per level and at least one level.")
        self.levels = nn.ModuleList(levels)
        self.level_output_shapes = [tuple(shape) for shape in level_output_shapes]
        for shape in self.level_output_shapes[:-1]:
            if shape[0] < 2:
                raise ValueError(f"a level that is split needs at least 2 channels, got output shape {shape}.")
        # Shapes of the pieces written to the output: the factored-out halves, then the last level's output.
        self.piece_shapes = [((shape[0] + 1) // 2,) + shape[1:] for shape in self.level_output_shapes[:-1]]
        self.piece_shapes.append(self.level_output_shapes[-1])

    def forward(self, inputs, context=None):
        batch_size = inputs.shape[0]
        hidden, total, pieces = inputs, inputs.new_zeros(batch_size), []
        for index, level in enumerate(self.levels):
            hidden, logabsdet = level(hidden, context)
            total = total + logabsdet
            if index < len(self.levels) - 1:
                factored, hidden = torch.chunk(hidden, 2, dim=1)
                pieces.append(factored.reshape(batch_size, -1))
        pieces.append(hidden.reshape(batch_size, -1))
        return torch.cat(pieces, dim=1), total

    def inverse(self, inputs, context=None):
        batch_size = inputs.shape[0]
        pieces = inputs.split([math.prod(shape) for shape in self.piece_shapes], dim=1)
        pieces = [piece.reshape((batch_size,) + shape) for piece, shape in zip(pieces, self.piece_shapes)]
        hidden, total = pieces[-1], inputs.new_zeros(batch_size)
        for index in reversed(range(len(self.levels))):
            if index < len(self.levels) - 1:
                hidden = torch.cat([pieces[index], hidden], dim=1)
            hidden, logabsdet = self.levels[index].inverse(hidden, context)
            total = total + logabsdet
        return hidden, total
