"""Rational-quadratic spline (RQ-NSF; Durkan et al. 2019, after Gregory & Delbourgo 1982).

docs/method.md §Rational-quadratic spline, rewritten so that no step subtracts nearly equal numbers: the denominator
s + (d_k + d_{k+1} - 2s) xi (1 - xi) is evaluated as s (xi^2 + (1-xi)^2) + (d_k + d_{k+1}) xi (1-xi),
and the inverse picks, by the sign of b, whichever root formula does not cancel.
"""

import torch

from .bins import bin_knots, knot_derivatives, locate_bin, safe_sqrt
from .knots import Knots


def _split(params, linear_tails):
    """Layout per element: K widths | K heights | K-1 (or K+1) derivatives."""
    num_bins = (params.shape[-1] + (1 if linear_tails else -1)) // 3
    return params.split([num_bins, num_bins, params.shape[-1] - 2 * num_bins], dim=-1)


def knots(params, bound, linear_tails, min_bin_width, min_bin_height, min_derivative) -> Knots:
    widths, heights, derivatives = _split(params, linear_tails)
    return Knots(
        x=bin_knots(widths, min_bin_width, -bound, bound),
        y=bin_knots(heights, min_bin_height, -bound, bound),
        derivatives=knot_derivatives(derivatives, min_derivative, linear_tails),
    )


def _log_derivative(xi, slope, d_start, d_end):
    """log g'(x) at relative position xi; also returns the (positive) denominator."""
    one_minus = 1.0 - xi
    mixed = xi * one_minus
    denominator = slope * (xi * xi + one_minus * one_minus) + (d_start + d_end) * mixed
    numerator = slope * slope * (d_end * xi * xi + 2.0 * slope * mixed + d_start * one_minus * one_minus)
    return torch.log(numerator) - 2.0 * torch.log(denominator), denominator


def rational_quadratic_spline(
    inputs, params, inverse, bound, linear_tails, min_bin_width, min_bin_height, min_derivative
):
    """RQ spline on the box [-bound, bound]; inputs must lie in the box."""
    width_logits, height_logits, derivative_logits = _split(params, linear_tails)
    selected = locate_bin(
        inputs,
        width_logits,
        height_logits,
        derivative_logits,
        inverse,
        bound,
        linear_tails,
        min_bin_width,
        min_bin_height,
        min_derivative,
    )
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
