"""One entry point for every spline family: tails, dtype policy and parameter counts.

Coupling and autoregressive layers take a family by name, so adding a family is one registry line.
"""

from functools import partial
from typing import Callable, NamedTuple

import torch

from . import linear_rational, quadratic, rational_quadratic
from .knots import Knots

TAILS_CHOICES = ("linear", None)


class Family(NamedTuple):
    """A spline family: its box function, its knot geometry and its parameters per bin."""

    transform: Callable
    knots: Callable
    params_per_bin: int


FAMILIES: dict[str, Family] = {
    "lrs": Family(linear_rational.linear_rational_spline, linear_rational.knots, 4),
    "rq": Family(rational_quadratic.rational_quadratic_spline, rational_quadratic.knots, 3),
    "quadratic": Family(quadratic.quadratic_spline, quadratic.knots, 2),
    # The original NSF/LRS code's boundary constant (not C1 at the box edge); for exact comparison only.
    "quadratic_original": Family(
        partial(quadratic.quadratic_spline, boundary="original"), partial(quadratic.knots, boundary="original"), 2
    ),
}


def _family(kind: str) -> Family:
    if kind not in FAMILIES:
        raise ValueError(f"unknown spline family {kind!r}; choose one of {sorted(FAMILIES)}.")
    return FAMILIES[kind]


def _check_tails(tails) -> bool:
    if tails not in TAILS_CHOICES:
        raise ValueError(f"unknown tails {tails!r}; choose 'linear' or None.")
    return tails == "linear"


def num_params(kind: str, num_bins: int, tails="linear") -> int:
    """Unnormalised parameters per element: a*K - 1 with linear tails (boundary derivatives fixed), a*K + 1 without."""
    if num_bins < 1:
        raise ValueError(f"num_bins must be at least 1, got {num_bins}.")
    return _family(kind).params_per_bin * num_bins + (-1 if _check_tails(tails) else 1)


def num_bins(kind: str, params_per_element: int, tails="linear") -> int:
    """Inverse of num_params; raises if the parameter count fits no bin count."""
    per_bin = _family(kind).params_per_bin
    bins, remainder = divmod(params_per_element + (1 if _check_tails(tails) else -1), per_bin)
    if remainder or bins < 1:
        raise ValueError(
            f"{params_per_element} parameters per element fit no {kind!r} spline with tails={tails!r}; "
            f"expected {per_bin}*K{'-1' if tails == 'linear' else '+1'}."
        )
    return bins


def spline(
    kind: str,
    inputs: torch.Tensor,
    params: torch.Tensor,
    inverse: bool = False,
    tail_bound: float = 3.0,
    tails="linear",
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the element-wise spline `kind` (or its inverse); returns (outputs, log|d outputs/d inputs|).

    params has shape inputs.shape + (num_params,). The spline maps [-tail_bound, tail_bound] onto
    itself and is the identity outside. With tails="linear" its boundary derivatives are 1 (C1
    tails); with tails=None they are free parameters too. Inputs are clamped into the box before any
    arithmetic and the result selected with torch.where, so tail elements never meet a division,
    log or sqrt of an out-of-range value, shapes never depend on data, and torch.compile can trace
    it. The maths runs in at least float32, with autocast off.
    """
    family = _family(kind)
    linear_tails = _check_tails(tails)
    if params.shape[:-1] != inputs.shape:
        raise ValueError(f"params shape {tuple(params.shape)} must be inputs shape {tuple(inputs.shape)} plus one dim.")
    num_bins(kind, params.shape[-1], tails)
    dtype = torch.promote_types(inputs.dtype, torch.float32)
    with torch.autocast(inputs.device.type, enabled=False):
        values = inputs.to(dtype)
        inside = (values >= -tail_bound) & (values <= tail_bound)
        outputs, log_derivative = family.transform(
            values.clamp(-tail_bound, tail_bound),
            params.to(dtype),
            inverse,
            tail_bound,
            linear_tails,
            min_bin_width,
            min_bin_height,
            min_derivative,
        )
        outputs = torch.where(inside, outputs, values)
        logabsdet = torch.where(inside, log_derivative, 0.0)
    return outputs, logabsdet


def spline_knots(
    kind: str,
    params: torch.Tensor,
    tail_bound: float = 3.0,
    tails="linear",
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> Knots:
    """The knots, knot derivatives (and LRS lambdas) that `params` describe, for tests and plots."""
    family = _family(kind)
    linear_tails = _check_tails(tails)
    num_bins(kind, params.shape[-1], tails)
    return family.knots(params, tail_bound, linear_tails, min_bin_width, min_bin_height, min_derivative)
