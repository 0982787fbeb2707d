"""Element-wise monotone maps whose parameters a conditioner predicts, by name: every spline family, and affine.

Each takes params with the M parameters of one element contiguous in the last dim, the layout the
coupling and autoregressive layers produce.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .. import splines
from ..splines import DEFAULT_SETTINGS, SplineSettings


class SplineMap:
    """A spline family with fixed settings; says how many parameters an element takes, how many of them lead as
    bin-size logits (the ones the original coupling layers divide by sqrt(hidden features)) and what "original"
    initialisation of an unconditional map means for the family ("uniform" or "normal")."""

    def __init__(self, family: splines.Family, settings: SplineSettings):
        self.name = family.name
        self.settings = settings
        self.num_params = family.num_params(settings)
        self.num_size_logits = family.num_size_logits(settings)
        self.original_init = family.original_init

    def __call__(self, inputs, params, inverse=False):
        return splines.spline(self.name, inputs, params, inverse, self.settings)


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


@dataclass(frozen=True)
class ElementwiseFamily:
    """A choice of element-wise map: its table label, how its map is built from the spline settings, and whether
    a coupling layer also maps its identity features with free parameters (the original's unconditional map)."""

    name: str
    label: str
    build: Callable[[SplineSettings], object]
    unconditional: bool


def _spline_entry(family: splines.Family) -> ElementwiseFamily:
    return ElementwiseFamily(family.name, family.label, lambda settings: SplineMap(family, settings), True)


AFFINE = ElementwiseFamily("affine", "Affine", lambda settings: AffineMap(), False)


def elementwise_families() -> dict[str, ElementwiseFamily]:
    """Every spline family registered so far, in registration order, then affine."""
    entries = {name: _spline_entry(family) for name, family in splines.FAMILIES.items()}
    return entries | {AFFINE.name: AFFINE}


def elementwise_family(name: str) -> ElementwiseFamily:
    entries = elementwise_families()
    if name not in entries:
        raise ValueError(f"unknown flow family {name!r}; choose one of {list(entries)}.")
    return entries[name]


def elementwise_map(name: str, settings: SplineSettings = DEFAULT_SETTINGS):
    """The element-wise map named `name` with `settings` (affine has none to take)."""
    return elementwise_family(name).build(settings)
