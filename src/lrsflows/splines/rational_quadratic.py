"""Rational-quadratic spline (RQ-NSF; Durkan et al. 2019, after Gregory & Delbourgo 1982).

docs/method.md §Rational-quadratic spline, rewritten so that no step subtracts nearly equal numbers: the denominator
s + (d_k + d_{k+1} - 2s) xi (1 - xi) is evaluated as s (xi^2 + (1-xi)^2) + (d_k + d_{k+1}) xi (1-xi),
and the inverse picks, by the sign of b, whichever root formula does not cancel.
"""

from functools import partial

import torch

from .bins import bin_knots, knot_derivatives, locate_bin, safe_sqrt
from .gradients import analytic_bin_map, autograd_bin_map
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


def _position(inputs, x_start, y_start, width, height, slope, d_start, d_end, inverse):
    """xi in [0, 1]: the input's relative position in its bin, solved from the y-offset when inverting."""
    if not inverse:
        return ((inputs - x_start) / width).clamp(0.0, 1.0)
    rise = torch.minimum((inputs - y_start).clamp_min(0.0), height)
    curvature = d_start + d_end - 2.0 * slope
    a = height * (slope - d_start) + rise * curvature
    b = height * d_start - rise * curvature
    root = safe_sqrt(b * b + 4.0 * a * slope * rise)  # b^2 - 4ac with c = -slope * rise
    b_positive = b >= 0
    # b >= 0: xi = 2 s rise / (b + root); b < 0 implies a > h s > 0: xi = (root - b) / (2a).
    numerator = torch.where(b_positive, 2.0 * slope * rise, root - b)
    denominator = torch.where(b_positive, b + root, 2.0 * a)
    return (numerator / denominator.clamp_min(torch.finfo(inputs.dtype).tiny)).clamp(0.0, 1.0)


def _bin_map(inputs, x_start, x_end, y_start, y_end, d_start, d_end, inverse):
    """The selected bin's map; also returns what its backward keeps (xi and the bin, not the input)."""
    width, height = x_end - x_start, y_end - y_start
    slope = height / width
    xi = _position(inputs, x_start, y_start, width, height, slope, d_start, d_end, inverse)
    log_derivative, denominator = _log_derivative(xi, slope, d_start, d_end)
    saved = (xi, x_start, x_end, y_start, y_end, d_start, d_end)
    if inverse:
        return x_start + xi * width, -log_derivative, saved
    one_minus = 1.0 - xi
    numerator = height * (slope * xi * xi + d_start * xi * one_minus)
    return y_start + numerator / denominator, log_derivative, saved


def _bin_map_gradients(grad_outputs, grad_log, xi, x_start, x_end, y_start, y_end, d_start, d_end, inverse):
    """Gradients of (outputs, log-derivative) weighted by (grad_outputs, grad_log) w.r.t. `_bin_map`'s arguments.

    Forward, y = y_k + h f(xi, s, d_k, d_k+1) with f = (s xi^2 + d_k xi(1-xi)) / D, D = s (xi^2 + (1-xi)^2) +
    (d_k + d_k+1) xi (1-xi), and log g' = 2 log s + log M - 2 log D, M = d_k+1 xi^2 + 2 s xi (1-xi) + d_k (1-xi)^2.
    The inverse solves y_k + h f(xi, ...) = y for xi, so by implicit differentiation its xi moves by
    rho = 1 / (h df/dxi) per unit of y and by -rho h df/dtheta per unit of any other quantity theta; its
    log-derivative is -log g' at that xi. Only s = h / w, xi = (x - x_k) / w (forward) and x = x_k + xi w
    (inverse) tie these to the bin's knots. Clamps of xi (and of the inverse's rise) are not differentiated:
    where rounding made one act, autograd's reference gives that element zero xi-gradient instead.
    """
    width, height = x_end - x_start, y_end - y_start
    slope = height / width
    one_minus = 1.0 - xi
    mixed = xi * one_minus
    xi2, one_minus2 = xi * xi, one_minus * one_minus
    denominator = slope * (xi2 + one_minus2) + (d_start + d_end) * mixed
    m = d_end * xi2 + 2.0 * slope * mixed + d_start * one_minus2
    per_denominator, per_m = 1.0 / denominator, 1.0 / m
    per_denominator2 = per_denominator * per_denominator
    # Partials of f and of log g' in xi, s, d_k, d_k+1 (the quotient rule on f; log g' term by term).
    f = (slope * xi2 + d_start * mixed) * per_denominator
    f_xi = slope * m * per_denominator2
    f_slope = mixed * (d_end * xi2 - d_start * one_minus2) * per_denominator2
    f_d_start = mixed * one_minus * (slope * one_minus + d_end * xi) * per_denominator2
    f_d_end = -mixed * xi * (slope * xi + d_start * one_minus) * per_denominator2
    log_xi = (
        2.0 * (d_end * xi + slope * (one_minus - xi) - d_start * one_minus) * per_m
        - 2.0 * (one_minus - xi) * (d_start + d_end - 2.0 * slope) * per_denominator
    )
    mixed_part = 2.0 * mixed * per_denominator
    log_slope = 2.0 / slope + 2.0 * mixed * per_m - 2.0 * (xi2 + one_minus2) * per_denominator
    log_d_start = one_minus2 * per_m - mixed_part
    log_d_end = xi2 * per_m - mixed_part

    g, q = grad_outputs, grad_log
    if inverse:  # x = x_k + xi w, log|dx/dy| = -log g'(xi)
        g_inputs = (g * width - q * log_xi) / (height * f_xi)
        g_f, g_log = -g_inputs * height, -q
        g_x_start, g_y_start, g_width, g_height = g, -g_inputs, g * xi, -g_inputs * f
    else:  # xi = (x - x_k) / w
        g_xi = g * height * f_xi + q * log_xi
        g_inputs = g_xi / width
        g_f, g_log = g * height, q
        g_x_start, g_y_start, g_width, g_height = -g_inputs, g, -g_inputs * xi, g * f
    g_slope = g_f * f_slope + g_log * log_slope
    g_d_start = g_f * f_d_start + g_log * log_d_start
    g_d_end = g_f * f_d_end + g_log * log_d_end
    # s = h / w
    g_height = g_height + g_slope / width
    g_width = g_width - g_slope * slope / width
    return g_inputs, g_x_start - g_width, g_width, g_y_start - g_height, g_height, g_d_start, g_d_end


_AUTOGRAD = autograd_bin_map(_bin_map)


def rational_quadratic_spline(inputs, params, inverse, settings, bin_map=_AUTOGRAD):
    """RQ spline on the box [-tail_bound, tail_bound]; inputs must lie in the box. `bin_map` maps inputs with the
    selected bin's quantities: autograd differentiates the default (the reference); `analytic` has its own backward."""
    width_logits, height_logits, derivative_logits = _split(params, settings)
    selected = locate_bin(inputs, width_logits, height_logits, derivative_logits, inverse, settings)
    return bin_map(inputs, *selected[1:], inverse=inverse)


analytic = partial(rational_quadratic_spline, bin_map=analytic_bin_map(_bin_map, _bin_map_gradients))

# NSF's rational-quadratic CDF: widths and heights scaled by 1/sqrt(hidden), torch.rand init.
RQ = Family("rq", "RQ-NSF", rational_quadratic_spline, knots, 3, 2, "uniform", analytic)
