"""Rational-quadratic spline (RQ-NSF; Durkan et al. 2019, after Gregory & Delbourgo 1982).

docs/method.md §Rational-quadratic spline, rewritten so that no step subtracts nearly equal numbers: the denominator
s + (d_k + d_{k+1} - 2s) xi (1 - xi) is evaluated as s (xi^2 + (1-xi)^2) + (d_k + d_{k+1}) xi (1-xi),
and the inverse picks, by the sign of b, whichever root formula does not cancel.
"""

import torch

from .bins import bin_knots, knot_derivatives, locate_bin, safe_sqrt
from .knots import Knots
from .registry import Family


def _split(params, settings):
    """Layout per element: K widths | K heights | K-1 (or K+1) derivatives."""
    num_bins = settings.num_bins
    return params.split([num_bins, num_bins, params.shape[-1] - 2 * num_bins], dim=-1)


def knots(params, settings) -> Knots:
    widths, heights, derivatives = _split(params, settings)
    bound = settings.tail_bound
    return Knots(
        x=bin_knots(widths, settings.min_bin_width, -bound, bound),
        y=bin_knots(heights, settings.min_bin_height, -bound, bound),
        derivatives=knot_derivatives(derivatives, settings.min_derivative, settings.linear_tails),
    )


def _log_derivative(xi, slope, d_start, d_end):
    """log g'(x) at relative position xi; also returns the (positive) denominator."""
    one_minus = 1.0 - xi
    mixed = xi * one_minus
    denominator = slope * (xi * xi + one_minus * one_minus) + (d_start + d_end) * mixed
    numerator = slope * slope * (d_end * xi * xi + 2.0 * slope * mixed + d_start * one_minus * one_minus)
    return torch.log(numerator) - 2.0 * torch.log(denominator), denominator


def rational_quadratic_spline(inputs, params, inverse, settings):
    """RQ spline on the box [-tail_bound, tail_bound]; inputs must lie in the box."""
    width_logits, height_logits, derivative_logits = _split(params, settings)
    selected = locate_bin(inputs, width_logits, height_logits, derivative_logits, inverse, settings)
    x_start, x_end, y_start, y_end, d_start, d_end = selected[1:]
    width, height = x_end - x_start, y_end - y_start
    slope = height / width

    if inverse:
        rise = torch.minimum((inputs - y_start).clamp_min(0.0), height)
        curvature = d_start + d_end - 2.0 * slope
        a = height * (slope - d_start) + rise * curvature
        b = height * d_start - rise * curvature
        root = safe_sqrt(b * b + 4.0 * a * slope * rise)  # b^2 - 4ac with c = -slope * rise
        b_positive = b >= 0
        # b >= 0: xi = 2 s rise / (b + root); b < 0 implies a > h s > 0: xi = (root - b) / (2a).
        numerator = torch.where(b_positive, 2.0 * slope * rise, root - b)
        denominator = torch.where(b_positive, b + root, 2.0 * a)
        xi = (numerator / denominator.clamp_min(torch.finfo(inputs.dtype).tiny)).clamp(0.0, 1.0)
        log_derivative, _ = _log_derivative(xi, slope, d_start, d_end)
        return x_start + xi * width, -log_derivative

    xi = ((inputs - x_start) / width).clamp(0.0, 1.0)
    log_derivative, denominator = _log_derivative(xi, slope, d_start, d_end)
    one_minus = 1.0 - xi
    numerator = height * (slope * xi * xi + d_start * xi * one_minus)
    return y_start + numerator / denominator, log_derivative


# NSF's rational-quadratic CDF: widths and heights scaled by 1/sqrt(hidden), torch.rand init.
RQ = Family("rq", "RQ-NSF", rational_quadratic_spline, knots, 3, 2, "uniform")
