"""Applying a spline family: the box and its identity tails, the dtype policy and the parameter check."""

import torch

from .knots import Knots
from .registry import Family, spline_family
from .settings import DEFAULT_SETTINGS, SplineSettings


def _checked(name: str, params: torch.Tensor, settings: SplineSettings) -> Family:
    family = spline_family(name)
    expected = family.num_params(settings)
    if params.shape[-1] != expected:
        raise ValueError(
            f"{params.shape[-1]} parameters per element fit no {name!r} spline with {settings.num_bins} bins and "
            f"tails={settings.tails!r}; it takes {expected}."
        )
    return family


def spline(
    family: str,
    inputs: torch.Tensor,
    params: torch.Tensor,
    inverse: bool = False,
    settings: SplineSettings = DEFAULT_SETTINGS,
    analytic_gradients: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the element-wise spline `family` (or its inverse); returns (outputs, log|d outputs/d inputs|).

    params has shape inputs.shape + (num_params,). The spline maps [-tail_bound, tail_bound] onto
    itself and is the identity outside. With tails="linear" its boundary derivatives are 1 (C1
    tails; family `quadratic` keeps NSF's slopes below 1, `quadratic_c1` has 1); with tails=None they are
    free parameters too. Inputs are clamped into the box before any
    arithmetic and the result selected with torch.where, so tail elements never meet a division,
    log or sqrt of an out-of-range value, shapes never depend on data, and torch.compile can trace
    it. The maths runs in at least float32, with autocast off.

    With analytic_gradients (LRS and RQ) the per-bin map has a hand-written, once-differentiable backward;
    analytic_gradients=False differentiates the same maths with autograd (the reference, and the way to
    second-order gradients). Families without an analytic backward ignore the flag.

    >>> import torch
    >>> from lrsflows.splines import SplineSettings, num_params, spline
    >>> settings = SplineSettings(num_bins=8)
    >>> x = torch.linspace(-4, 4, 9, dtype=torch.float64)
    >>> params = torch.randn(9, num_params("lrs", settings), dtype=torch.float64)
    >>> y, logabsdet = spline("lrs", x, params, settings=settings)
    >>> x_again, inverse_logabsdet = spline("lrs", y, params, inverse=True, settings=settings)
    >>> bool(torch.allclose(x_again, x)), bool(torch.allclose(inverse_logabsdet, -logabsdet))
    (True, True)
    >>> y[0].item(), logabsdet[0].item()  # outside the box [-3, 3]: the identity
    (-4.0, 0.0)
    """
    if params.shape[:-1] != inputs.shape:
        raise ValueError(f"params shape {tuple(params.shape)} must be inputs shape {tuple(inputs.shape)} plus one dim.")
    chosen = _checked(family, params, settings)
    transform = (
        chosen.analytic_transform if analytic_gradients and chosen.analytic_transform is not None else chosen.transform
    )
    bound = settings.tail_bound
    dtype = torch.promote_types(inputs.dtype, torch.float32)
    with torch.autocast(inputs.device.type, enabled=False):
        values = inputs.to(dtype)
        inside = (values >= -bound) & (values <= bound)
        outputs, log_derivative = transform(values.clamp(-bound, bound), params.to(dtype), inverse, settings)
        outputs = torch.where(inside, outputs, values)
        logabsdet = torch.where(inside, log_derivative, 0.0)
    return outputs, logabsdet


def spline_knots(family: str, params: torch.Tensor, settings: SplineSettings = DEFAULT_SETTINGS) -> Knots:
    """The knots, knot derivatives (and LRS lambdas) that `params` describe, for tests and plots."""
    return _checked(family, params, settings).knots(params, settings)
