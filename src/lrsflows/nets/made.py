"""Residual MADE (Germain et al. 2015) as NSF uses it: the conditioner of autoregressive flows (docs/architectures.md §Autoregressive layers)."""

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from .residual import BATCH_NORM_EPS, ResidualBlock


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (all weights still count as parameters)."""

    def __init__(self, in_features, out_features, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask)

    def forward(self, inputs):
        return F.linear(inputs, self.weight * self.mask, self.bias)


def _hidden_degrees(hidden_features, features):
    return torch.arange(hidden_features) % max(1, features - 1) + min(1, features - 1)


class MADE(nn.Module):
    """Outputs [B, features * multiplier]; output j of feature i (index i*multiplier + j) sees only inputs < i.

    Degrees as in NSF: inputs 1..D, hidden arange(H) % max(1, D-1) + min(1, D-1), outputs each input
    degree repeated `multiplier` times consecutively.
    """

    def __init__(
        self, features, hidden_features, multiplier, num_blocks=2, dropout=0.0, use_batch_norm=False, context_features=0
    ):
        super().__init__()
        input_degrees = torch.arange(1, features + 1)
        hidden_degrees = _hidden_degrees(hidden_features, features)
        output_degrees = input_degrees.repeat_interleave(multiplier)
        self.initial = MaskedLinear(features, hidden_features, (hidden_degrees[:, None] >= input_degrees).float())
        self.context = nn.Linear(context_features, hidden_features) if context_features else None
        hidden_mask = (hidden_degrees[:, None] >= hidden_degrees).float()
        self.blocks = nn.ModuleList(
            ResidualBlock(
                partial(MaskedLinear, hidden_features, hidden_features, hidden_mask),
                partial(nn.BatchNorm1d, hidden_features, eps=BATCH_NORM_EPS),
                dropout,
                use_batch_norm,
            )
            for _ in range(num_blocks)
        )
        self.final = MaskedLinear(
            hidden_features, features * multiplier, (output_degrees[:, None] > hidden_degrees).float()
        )

    def forward(self, inputs, context=None):
        hidden = self.initial(inputs)
        if self.context is not None:
            hidden = hidden + self.context(context)
        for block in self.blocks:
            hidden = block(hidden)
        return self.final(hidden)
