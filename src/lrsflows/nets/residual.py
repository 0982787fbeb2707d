"""Fully connected and convolutional residual conditioners (docs/architectures.md §Tabular and 2-D flows; docs/architectures.md §Image flows), with the original init."""

from collections.abc import Callable
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

LAST_LAYER_INIT = 1e-3
BATCH_NORM_EPS = 1e-3


def _near_zero_(layer: nn.Module) -> nn.Module:
    """The original initialises each block's last layer U(-1e-3, 1e-3) so blocks start as identities."""
    nn.init.uniform_(layer.weight, -LAST_LAYER_INIT, LAST_LAYER_INIT)
    nn.init.uniform_(layer.bias, -LAST_LAYER_INIT, LAST_LAYER_INIT)
    return layer


class ResidualBlock(nn.Module):
    """[BN] -> ReLU -> layer -> [BN] -> ReLU -> Dropout -> layer, plus the skip connection.

    `make_layer()` builds each layer (a linear map, a convolution, MADE's masked linear map), `make_norm()` each
    batch norm.
    """

    def __init__(self, make_layer, make_norm, dropout, use_batch_norm):
        super().__init__()
        self.norms = nn.ModuleList([make_norm(), make_norm()]) if use_batch_norm else None
        self.first = make_layer()
        self.second = _near_zero_(make_layer())
        self.dropout = nn.Dropout(dropout)

    def forward(self, inputs):
        hidden = inputs if self.norms is None else self.norms[0](inputs)
        hidden = self.first(F.relu(hidden))
        hidden = hidden if self.norms is None else self.norms[1](hidden)
        hidden = self.second(self.dropout(F.relu(hidden)))
        return inputs + hidden


class _ResidualStack(nn.Module):
    """outer(in + context, H) -> num_blocks residual blocks -> outer(H, out); context is concatenated to the input.

    A subclass names its layers: `make_outer(in, out)` the first and last, `make_inner(H, H)` and `make_norm(H)`
    a block's. They are built in the order initial, blocks, final, which fixes how they draw their random init.
    """

    make_outer: Callable
    make_inner: Callable
    make_norm: Callable

    def __init__(
        self,
        in_features,
        out_features,
        hidden_features,
        num_blocks=2,
        dropout=0.0,
        use_batch_norm=False,
        context_features=0,
    ):
        super().__init__()
        self.initial = self.make_outer(in_features + context_features, hidden_features)
        inner = partial(self.make_inner, hidden_features, hidden_features)
        norm = partial(self.make_norm, hidden_features, eps=BATCH_NORM_EPS)
        self.blocks = nn.ModuleList(ResidualBlock(inner, norm, dropout, use_batch_norm) for _ in range(num_blocks))
        self.final = self.make_outer(hidden_features, out_features)

    def forward(self, inputs, context=None):
        hidden = self.initial(inputs if context is None else torch.cat([inputs, context], dim=1))
        for block in self.blocks:
            hidden = block(hidden)
        return self.final(hidden)


class ResidualNet(_ResidualStack):
    """Linear(in, H) -> num_blocks residual blocks -> Linear(H, out); context is concatenated to the input."""

    make_outer = make_inner = nn.Linear
    make_norm = nn.BatchNorm1d


class ConvResidualNet(_ResidualStack):
    """Conv1x1(in, H) -> num_blocks residual blocks of 3x3 convs -> Conv1x1(H, out), for image couplings (the
    features are channels)."""

    make_outer = staticmethod(partial(nn.Conv2d, kernel_size=1))
    make_inner = staticmethod(partial(nn.Conv2d, kernel_size=3, padding=1))
    make_norm = nn.BatchNorm2d
