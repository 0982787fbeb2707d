"""The geometry a family's parameters describe, shared by the transforms, tests and plots."""

from typing import NamedTuple

import torch


class Knots(NamedTuple):
    """Knot positions and derivatives of one spline per element (last dim over the K+1 knots).

    `lambdas` holds LRS's per-bin interior-point positions in (0, 1); it is None for the others.
    """

    x: torch.Tensor
    y: torch.Tensor
    derivatives: torch.Tensor
    lambdas: torch.Tensor | None = None
