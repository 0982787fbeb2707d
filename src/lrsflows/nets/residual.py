"""Fully connected and convolutional residual conditioners (docs/architectures.md §Tabular and 2-D flows; docs/architectures.md §Image flows), with the original init."""

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
    """[BN] -> ReLU -> layer -> [BN] -> ReLU -> Dropout -> layer, plus the skip connection."""

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


class ResidualNet(nn.Module):
    """Linear(in, H) -> num_blocks residual blocks -> Linear(H, out); context is concatenated to the input."""

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
        self.hidden_features = hidden_features
        self.initial = nn.Linear(in_features + context_features, hidden_features)
        self.blocks = nn.ModuleList(
            ResidualBlock(
                lambda: nn.Linear(hidden_features, hidden_features),
                lambda: nn.BatchNorm1d(hidden_features, eps=BATCH_NORM_EPS),
                dropout,
                use_batch_norm,
            )
            for _ in range(num_blocks)
        )
        self.final = nn.Linear(hidden_features, out_features)

    def forward(self, inputs, context=None):
        hidden = self.initial(inputs if context is None else torch.cat([inputs, context], dim=1))
        for block in self.blocks:
            hidden = block(hidden)
        return self.final(hidden)


class ConvResidualNet(nn.Module):
    """Conv1x1(in, H) -> num_blocks residual blocks of 3x3 convs -> Conv1x1(H, out), for image couplings."""

    def __init__(
        self,
        in_channels,
        out_channels,
        hidden_channels,
        num_blocks=2,
        dropout=0.0,
        use_batch_norm=False,
        context_channels=0,
    ):
        super().__init__()
        self.hidden_features = hidden_channels
        self.initial = nn.Conv2d(in_channels + context_channels, hidden_channels, kernel_size=1)
        self.blocks = nn.ModuleList(
            ResidualBlock(
                lambda: nn.Conv2d(hidden_channels, hidden_channels, kernel_size=3, padding=1),
                lambda: nn.BatchNorm2d(hidden_channels, eps=BATCH_NORM_EPS),
                dropout,
                use_batch_norm,
            )
            for _ in range(num_blocks)
        )
        self.final = nn.Conv2d(hidden_channels, out_channels, kernel_size=1)

    def forward(self, inputs, context=None):
        hidden = self.initial(inputs if context is None else torch.cat([inputs, context], dim=1))
        for block in self.blocks:
            hidden = block(hidden)
        return self.final(hidden)
