"""Element-wise monotone maps whose parameters a conditioner predicts: splines by family name, or affine.

Both take params with the M parameters of one element contiguous in the last dim, the layout the
coupling and autoregressive layers produce.
"""

import torch

from .. import splines
from ..splines.registry import num_size_logits, unconditional_init

SPLINE_FAMILIES = tuple(splines.FAMILIES)  # the registry's: lrs, rq, quadratic (NSF's), quadratic_c1
FAMILY_CHOICES = SPLINE_FAMILIES + ("affine",)


class SplineMap:
    """A spline family with fixed settings (bins, tails, box, minimum sizes)."""

    def __init__(
        self,
        kind,
        num_bins=8,
        tails="linear",
        tail_bound=3.0,
        min_bin_width=1e-3,
        min_bin_height=1e-3,
        min_derivative=1e-3,
    ):
        self.num_params = splines.num_params(kind, num_bins, tails)
        self.kind = kind
        self.settings = dict(
            tails=tails,
            tail_bound=tail_bound,
            min_bin_width=min_bin_width,
            min_bin_height=min_bin_height,
            min_derivative=min_derivative,
        )
        # Bin-size logits (widths, heights; all parameters for the quadratic families) are the ones the
        # original coupling layers divide by sqrt(hidden features).
        self.num_size_logits = num_size_logits(kind, num_bins, tails)
        # What "original" initialisation of an unconditional map means for this family ("uniform" or "normal").
        self.original_init = unconditional_init(kind)

    def __call__(self, inputs, params, inverse=False):
        return splines.spline(self.kind, inputs, params, inverse=inverse, **self.settings)


class AffineMap:
    """y = x * scale + shift with scale = sigmoid(raw + 2) + 1e-3 (NSF/LRS baselines); params [shift, raw]."""

    num_params = 2
    num_size_logits = 0
    original_init = "uniform"  # no original has an unconditional affine map; U[0, 1) as for LRS and RQ

    def __call__(self, inputs, params, inverse=False):
        shift, raw_scale = params.unbind(-1)
        scale = torch.sigmoid(raw_scale + 2.0) + 1e-3
        if inverse:
            return (inputs - shift) / scale, -torch.log(scale)
        return inputs * scale + shift, torch.log(scale)


def elementwise_map(family: str, **spline_settings):
    """The element-wise map named `family`: a family of the spline registry, or 'affine' (ignores the spline settings)."""
    if family == "affine":
        return AffineMap()
    if family not in SPLINE_FAMILIES:
        raise ValueError(f"unknown flow family {family!r}; choose one of {FAMILY_CHOICES}.")
    return SplineMap(family, **spline_settings)
