"""Linear rational spline (LRS; Dolatabadi, Erfani & Leckie 2020, after Fuhr & Kallay 1992).

Each bin [x_k, x_{k+1}] is split at x_m = x_k + lambda_k * w_k into two linear-rational pieces
through (x_k, y_k), (x_m, y_c), (x_{k+1}, y_{k+1}) with weights w_a = 1, w_c, w_b = sqrt(d_k/d_{k+1})
(docs/method.md §Linear rational spline). Both pieces are the same map on an interval of length L onto one of height H,

    y - y_start = w_end * H * t / (w_start * (L - t) + w_end * t),

and its inverse is the same map with (L, H) and (w_start, w_end) swapped, so the inverse costs what
the forward does. Everything is written with offsets from the piece's start: the original code's
expanded inverse, (w_c - w_a) y + w_a y_a - w_c y_c, cancels catastrophically in float32.
"""

import torch

from .bins import bin_knots, gather_bin, knot_derivatives, locate_bin
from .knots import Knots
from .registry import Family

LAMBDA_SCALE = 0.95
LAMBDA_OFFSET = 0.025


def _split(params, settings):
    """Layout per element: K widths | K heights | K lambda logits | K-1 (or K+1) derivatives."""
    num_bins = settings.num_bins
    return params.split([num_bins, num_bins, num_bins, params.shape[-1] - 3 * num_bins], dim=-1)


def _lambda(logits):
    return LAMBDA_SCALE * torch.sigmoid(logits) + LAMBDA_OFFSET


def knots(params, settings) -> Knots:
    widths, heights, lambdas, derivatives = _split(params, settings)
    bound = settings.tail_bound
    return Knots(
        x=bin_knots(widths, settings.min_bin_width, -bound, bound),
        y=bin_knots(heights, settings.min_bin_height, -bound, bound),
        derivatives=knot_derivatives(derivatives, settings.min_derivative, settings.linear_tails),
        lambdas=_lambda(lambdas),
    )


def _rational_piece(t, length, height, weight_start, weight_end):
    """Map t in [0, length] onto [0, height]; returns the offset and log of its derivative.

    Every term of the denominator is non-negative, so it is at least min(weights) * length > 0.
    """
    t = torch.minimum(t.clamp_min(0.0), length)
    denominator = weight_start * (length - t) + weight_end * t
    offset = weight_end * height * t / denominator
    log_derivative = torch.log(weight_start * weight_end * length * height) - 2.0 * torch.log(denominator)
    return offset, log_derivative


def linear_rational_spline(inputs, params, inverse, settings):
    """LRS on the box [-tail_bound, tail_bound]; inputs must lie in the box."""
    width_logits, height_logits, lambda_logits, derivative_logits = _split(params, settings)
    selected = locate_bin(inputs, width_logits, height_logits, derivative_logits, inverse, settings)
    x_start, x_end, y_start, y_end, d_start, d_end = selected[1:]
    lam = _lambda(gather_bin(lambda_logits, selected.index))  # only the selected bin's lambda

    width, height = x_end - x_start, y_end - y_start
    w_b = torch.sqrt(d_start / d_end)
    w_c = (lam * d_start + (1.0 - lam) * w_b * d_end) * width / height
    # Heights of the two pieces, y_c - y_k and y_{k+1} - y_c, each computed without a difference.
    norm = (1.0 - lam) + lam * w_b
    rises = (height * lam * w_b / norm, height * (1.0 - lam) / norm)
    runs = (lam * width, (1.0 - lam) * width)
    # The inverse is the same map from y to x: runs and rises trade places and each piece's two weights swap.
    if inverse:
        lengths, heights, starts = rises, runs, (y_start, x_start)
        weights = ((w_c, 1.0), (w_b, w_c))
    else:
        lengths, heights, starts = runs, rises, (x_start, y_start)
        weights = ((1.0, w_c), (w_c, w_b))

    offset = inputs - starts[0]
    first = offset <= lengths[0]
    base = torch.where(first, starts[1], starts[1] + heights[0])
    t = torch.where(first, offset, offset - lengths[0])
    piece_length = torch.where(first, *lengths)
    piece_height = torch.where(first, *heights)
    weight_start = torch.where(first, weights[0][0], weights[1][0])
    weight_end = torch.where(first, weights[0][1], weights[1][1])
    piece, log_derivative = _rational_piece(t, piece_length, piece_height, weight_start, weight_end)
    return base + piece, log_derivative


# LRS code (hmdolatabadi/LRS_NF): widths and heights scaled by 1/sqrt(hidden), torch.rand init.
LRS = Family("lrs", "LRS", linear_rational_spline, knots, 4, 2, "uniform")
