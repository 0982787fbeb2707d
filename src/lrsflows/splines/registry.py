"""One entry point for every spline family: tails, dtype policy and parameter counts.

Coupling and autoregressive layers take a family by name, so adding a family is one registry line.
"""

from functools import partial
from typing import Callable, NamedTuple

import torch

from . import linear_rational, quadratic, rational_quadratic
from .knots import Knots

TAILS_CHOICES = ("linear", None)
# How the free parameters of a coupling layer's unconditional map start: each family's original code
# ("original"), or U[0, 1) or N(0, 1) for every family.
INIT_CHOICES = ("original", "uniform", "normal")


class Family(NamedTuple):
    """A spline family: its box function, its knot geometry, its parameters per bin, how many leading
    parameters per bin are bin-size logits (those the original coupling layers divide by sqrt(hidden
    features); None: every parameter) and the distribution its original code initialises the free
    parameters of a coupling layer's unconditional map with ("uniform" U[0, 1) or "normal" N(0, 1))."""

    transform: Callable
    knots: Callable
    params_per_bin: int
    size_logits_per_bin: int | None
    original_init: str


FAMILIES: dict[str, Family] = {
    # LRS code (hmdolatabadi/LRS_NF) and NSF's rational-quadratic CDF: widths | heights scaled, torch.rand init.
    "lrs": Family(linear_rational.linear_rational_spline, linear_rational.knots, 4, 2, "uniform"),
    "rq": Family(rational_quadratic.rational_quadratic_spline, rational_quadratic.knots, 3, 2, "uniform"),
    # NSF's quadratic spline, the code behind the published Q-NSF numbers: its boundary constant (slopes below
    # 1 at the box edge), widths and vertex logits all scaled, torch.randn init (PiecewiseQuadraticCDF).
    "quadratic": Family(
        partial(quadratic.quadratic_spline, boundary="nsf"), partial(quadratic.knots, boundary="nsf"), 2, None, "normal"
    ),
    # Our correction: the boundary density exactly 1, so the spline joins the identity tails C1.
    "quadratic_c1": Family(
        partial(quadratic.quadratic_spline, boundary="c1"), partial(quadratic.knots, boundary="c1"), 2, None, "normal"
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


def num_size_logits(kind: str, num_bins: int, tails="linear") -> int:
    """How many leading parameters per element are bin-size logits (the original coupling layers divide
    them by sqrt(hidden features)): the K widths and K heights, or every parameter (quadratic)."""
    per_bin = _family(kind).size_logits_per_bin
    return num_params(kind, num_bins, tails) if per_bin is None else per_bin * num_bins


def unconditional_init(kind: str, init: str = "original") -> str:
    """The distribution ("uniform" or "normal") that `init` means for family `kind`."""
    if init not in INIT_CHOICES:
        raise ValueError(f"unknown unconditional init {init!r}; choose one of {INIT_CHOICES}.")
    return _family(kind).original_init if init == "original" else init


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
    tails; family `quadratic` keeps NSF's slopes below 1, `quadratic_c1` has 1); with tails=None they are
    free parameters too. Inputs are clamped into the box before any
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
