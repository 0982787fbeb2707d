"""Coupling layers (docs/architectures.md §Coupling layers): half the features condition an element-wise map of the other half."""

import math

import torch
from torch import nn

from .base import Transform, sum_except_batch

# How the free parameters of a coupling layer's unconditional map start: as the family's original code does
# ("original"), or U[0, 1) or N(0, 1) for every family.
INIT_CHOICES = ("original", "uniform", "normal")


def alternating_mask(features: int, even: bool = True) -> torch.Tensor:
    """Tabular/2-D mask: transform features 0, 2, 4, ... (even) or 1, 3, 5, ... (odd)."""
    mask = torch.zeros(features, dtype=torch.bool)
    mask[0 if even else 1 :: 2] = True
    return mask


def mid_split_mask(channels: int) -> torch.Tensor:
    """Image mask: transform the first ceil(C/2) channels, condition on the rest."""
    mask = torch.zeros(channels, dtype=torch.bool)
    mask[: (channels + 1) // 2] = True
    return mask


class CouplingTransform(Transform):
    """Element-wise map of the masked features whose parameters are predicted from the others.

    mask[i] True marks feature (or channel) i as transformed. `make_conditioner(in, out)` builds the
    network mapping the identity features to out = transformed * num_params outputs, read as
    [B, transformed, num_params, *spatial] so one element's parameters are contiguous. Bin-size
    logits are multiplied by `size_logit_scale` (the original's 1/sqrt(hidden)). With
    `unconditional_identity`, the identity features pass through the same map with free parameters,
    applied after the conditioner reads them. `unconditional_init` draws those parameters: "original"
    as the family's original code does (U[0,1) for LRS and RQ, N(0,1) for the quadratic families;
    `elementwise.original_init`), or "uniform" U[0,1) / "normal" N(0,1) for any family.
    """

    def __init__(
        self,
        mask,
        make_conditioner,
        elementwise,
        size_logit_scale=1.0,
        unconditional_identity=False,
        unconditional_init="original",
    ):
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.all() or not mask.any():
            raise ValueError("a coupling mask must transform some features and keep others.")
        self.register_buffer("transform_index", mask.nonzero().squeeze(1))
        self.register_buffer("identity_index", (~mask).nonzero().squeeze(1))
        self.register_buffer("merge_index", torch.argsort(torch.cat([self.identity_index, self.transform_index])))
        self.elementwise = elementwise
        self.size_logit_scale = size_logit_scale
        num_transform = len(self.transform_index)
        self.conditioner = make_conditioner(len(self.identity_index), num_transform * elementwise.num_params)
        if unconditional_init not in INIT_CHOICES:
            raise ValueError(f"unknown unconditional init {unconditional_init!r}; choose one of {INIT_CHOICES}.")
        self.identity_params = None
        if unconditional_identity:
            init = elementwise.original_init if unconditional_init == "original" else unconditional_init
            draw = torch.randn if init == "normal" else torch.rand
            self.identity_params = nn.Parameter(draw(len(self.identity_index), elementwise.num_params))

    def _params(self, identity, context):
        raw = self.conditioner(identity, context)
        shape = (raw.shape[0], len(self.transform_index), self.elementwise.num_params) + raw.shape[2:]
        params = raw.reshape(shape).movedim(2, -1)
        sizes = self.elementwise.num_size_logits
        if sizes and self.size_logit_scale != 1.0:
            params = torch.cat([params[..., :sizes] * self.size_logit_scale, params[..., sizes:]], dim=-1)
        return params

    def _identity_params(self, identity):
        """The free parameters of the unconditional map, broadcast over the batch (and any spatial dims)."""
        params = self.identity_params.reshape(
            self.identity_params.shape[:1] + (1,) * (identity.dim() - 2) + self.identity_params.shape[1:]
        )
        return params.expand(identity.shape + params.shape[-1:])

    def _couple(self, inputs, context, inverse):
        identity = inputs.index_select(1, self.identity_index)
        transform = inputs.index_select(1, self.transform_index)
        if self.identity_params is None:
            transformed, logabsdet = self.elementwise(transform, self._params(identity, context), inverse)
        elif not inverse:
            # The conditioner reads the raw identity features; then one spline call maps both halves (the
            # unconditional map's parameters appended to the conditioner's), half the ops of two calls.
            params = torch.cat([self._params(identity, context), self._identity_params(identity)], dim=1)
            mapped, logabsdet = self.elementwise(torch.cat([transform, identity], dim=1), params, inverse)
            transformed, identity = mapped.split([len(self.transform_index), len(self.identity_index)], dim=1)
        else:  # the unconditional map is undone first: the conditioner must see the raw identity features
            identity, identity_logabsdet = self.elementwise(identity, self._identity_params(identity), inverse)
            transformed, logabsdet = self.elementwise(transform, self._params(identity, context), inverse)
            logabsdet = torch.cat([logabsdet, identity_logabsdet], dim=1)
        outputs = torch.cat([identity, transformed.to(inputs.dtype)], dim=1).index_select(1, self.merge_index)
        return outputs, sum_except_batch(logabsdet)

    def forward(self, inputs, context=None):
        return self._couple(inputs, context, inverse=False)

    def inverse(self, inputs, context=None):
        return self._couple(inputs, context, inverse=True)


def hidden_scale(hidden_features: int) -> float:
    """The original coupling layers divide width/height logits by sqrt(hidden features)."""
    return 1.0 / math.sqrt(hidden_features)
