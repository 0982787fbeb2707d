"""Linear rational spline (LRS; Dolatabadi, Erfani & Leckie 2020, after Fuhr & Kallay 1992).

Each bin [x_k, x_{k+1}] is split at x_m = x_k + lambda_k * w_k into two linear-rational pieces
through (x_k, y_k), (x_m, y_c), (x_{k+1}, y_{k+1}) with weights w_a = 1, w_c, w_b = sqrt(d_k/d_{k+1})
(docs/method.md §Linear rational spline). Both pieces are the same map on an interval of length L onto one of height H,

    y - y_start = w_end * H * t / (w_start * (L - t) + w_end * t),

and its inverse is the same map with (L, H) and (w_start, w_end) swapped, so the inverse costs what
the forward does. Everything is written with offsets from the piece's start: the original code's
expanded inverse, (w_c - w_a) y + w_a y_a - w_c y_c, cancels catastrophically in float32.
"""

from functools import partial
from typing import NamedTuple

import torch

from .bins import bin_knots, gather_bin, knot_derivatives, locate_bin
from .gradients import analytic_bin_map, autograd_bin_map
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


class _Shape(NamedTuple):
    """A bin's split into two pieces: runs (lambda w_k, (1 - lambda) w_k), rises (y_c - y_k, y_k+1 - y_c) and the
    weights w_b, w_c, with the bin width, height and norm = (1 - lambda) + lambda w_b they are made of."""

    width: torch.Tensor
    height: torch.Tensor
    w_b: torch.Tensor
    w_c: torch.Tensor
    norm: torch.Tensor
    runs: tuple[torch.Tensor, torch.Tensor]
    rises: tuple[torch.Tensor, torch.Tensor]


def _shape(x_start, x_end, y_start, y_end, d_start, d_end, lam) -> _Shape:
    width, height = x_end - x_start, y_end - y_start
    w_b = torch.sqrt(d_start / d_end)
    w_c = (lam * d_start + (1.0 - lam) * w_b * d_end) * width / height
    # Heights of the two pieces, y_c - y_k and y_{k+1} - y_c, each computed without a difference.
    norm = (1.0 - lam) + lam * w_b
    rises = (height * lam * w_b / norm, height * (1.0 - lam) / norm)
    runs = (lam * width, (1.0 - lam) * width)
    return _Shape(width, height, w_b, w_c, norm, runs, rises)


def _pieces(inputs, shape: _Shape, x_start, y_start, inverse):
    """Whether each input lies in the first piece, and the pieces' base, offset t, length, height and weights
    w_0, w_1, each as a (first piece, second piece) pair."""
    # The inverse is the same map from y to x: runs and rises trade places and each piece's two weights swap.
    if inverse:
        lengths, heights, starts = shape.rises, shape.runs, (y_start, x_start)
        weights = ((shape.w_c, 1.0), (shape.w_b, shape.w_c))
    else:
        lengths, heights, starts = shape.runs, shape.rises, (x_start, y_start)
        weights = ((1.0, shape.w_c), (shape.w_c, shape.w_b))
    offset = inputs - starts[0]
    first = offset <= lengths[0]
    bases = (starts[1], starts[1] + heights[0])
    offsets = (offset, offset - lengths[0])
    return first, (bases, offsets, lengths, heights, (weights[0][0], weights[1][0]), (weights[0][1], weights[1][1]))


def _blend(mask, first, second):
    """torch.where(mask, first, second) for a 0/1 float mask, exact for finite values. torch.where branches per
    element on CPU: on a random mask it costs about 20 multiplications, lerp about 1.5."""
    if not isinstance(first, torch.Tensor):
        first = torch.full_like(second, first)
    return torch.lerp(second, first, mask)


def _bin_map(inputs, x_start, x_end, y_start, y_end, d_start, d_end, lam, inverse):
    """The selected bin's map; also returns what its backward keeps (the arguments, all else is recomputed)."""
    shape = _shape(x_start, x_end, y_start, y_end, d_start, d_end, lam)
    first, pairs = _pieces(inputs, shape, x_start, y_start, inverse)
    base, t, length, height, weight_start, weight_end = (torch.where(first, *pair) for pair in pairs)
    piece, log_derivative = _rational_piece(t, length, height, weight_start, weight_end)
    return base + piece, log_derivative, (inputs, x_start, x_end, y_start, y_end, d_start, d_end, lam)


def _bin_map_gradients(grad_outputs, grad_log, inputs, x_start, x_end, y_start, y_end, d_start, d_end, lam, inverse):
    """Gradients of (outputs, log-derivative) weighted by (grad_outputs, grad_log) w.r.t. `_bin_map`'s arguments.

    Piece P(t) = w_1 H t / D, D = w_0 (L - t) + w_1 t, log P' = log(w_0 w_1 L H) - 2 log D; with a = t / D and
    b = (L - t) / D (so w_0 b + w_1 a = 1) its partials are dP/dt = w_0 w_1 L H / D^2, dP/dL = -w_0 w_1 H a / D,
    dP/dH = w_1 a, dP/dw_0 = -w_1 H a b, dP/dw_1 = w_0 H a b, and dlogP'/d(t, L, H, w_0, w_1) =
    (2 (w_0 - w_1) / D, 1/L - 2 w_0 / D, 1/H, 1/w_0 - 2 b, 1/w_1 - 2 a). Where rounding clamped t, the clamp is
    not differentiated (autograd's reference gives that element's t-gradient to L instead).
    """
    shape = _shape(x_start, x_end, y_start, y_end, d_start, d_end, lam)
    first, pairs = _pieces(inputs, shape, x_start, y_start, inverse)
    mask = first.to(inputs.dtype)
    rest = 1.0 - mask
    t, length, height, w_0, w_1 = (_blend(mask, *pair) for pair in pairs[1:])
    t = torch.minimum(t.clamp_min(0.0), length)
    reciprocal = 1.0 / (w_0 * (length - t) + w_1 * t)
    a, b = t * reciprocal, (length - t) * reciprocal
    g, q = grad_outputs, grad_log
    g_times_height = g * height
    common = w_1 * g_times_height * a + 2.0 * q
    g_t = (w_0 * w_1 * g_times_height * length * reciprocal + 2.0 * q * (w_0 - w_1)) * reciprocal
    g_length = q / length - common * w_0 * reciprocal
    g_piece_height = g * w_1 * a + q / height
    g_w_0 = q / w_0 - common * b
    g_w_1 = q / w_1 + (w_0 * g_times_height * b - 2.0 * q) * a

    # Back to the bin. The second piece starts after the first: its base is start + height_1, its t is
    # offset - length_1. Forward, w_0 is the weight at the piece's left (x) end; the inverse swaps them.
    g_lengths = (_blend(mask, g_length, -g_t), rest * g_length)
    g_heights = (_blend(mask, g_piece_height, g), rest * g_piece_height)
    g_left, g_right = (g_w_1, g_w_0) if inverse else (g_w_0, g_w_1)
    g_w_c = _blend(mask, g_right, g_left)
    g_w_b = rest * g_right
    g_runs, g_rises = (g_heights, g_lengths) if inverse else (g_lengths, g_heights)
    g_x_start, g_y_start = (g, -g_t) if inverse else (-g_t, g)

    # runs = (lam w, (1 - lam) w), rises = (sigma h, (1 - sigma) h) with sigma = lam w_b / norm, whose partials
    # are w_b / norm^2 (lam) and lam (1 - lam) / norm^2 (w_b); w_c = (lam d_k + (1 - lam) w_b d_k+1) w / h and
    # w_b = sqrt(d_k / d_k+1), so dw_b/dd_k = w_b / (2 d_k), dw_b/dd_k+1 = -w_b / (2 d_k+1).
    width, height, w_b, w_c, norm = shape.width, shape.height, shape.w_b, shape.w_c, shape.norm
    sigma = lam * w_b / norm
    g_sigma_per_norm2 = height * (g_rises[0] - g_rises[1]) / (norm * norm)
    g_w_c_per_slope = g_w_c * width / height
    g_width = lam * g_runs[0] + (1.0 - lam) * g_runs[1] + g_w_c * w_c / width
    g_height = sigma * g_rises[0] + (1.0 - sigma) * g_rises[1] - g_w_c * w_c / height
    g_lam = width * (g_runs[0] - g_runs[1]) + g_sigma_per_norm2 * w_b + g_w_c_per_slope * (d_start - w_b * d_end)
    g_w_b = g_w_b + g_sigma_per_norm2 * lam * (1.0 - lam) + g_w_c_per_slope * (1.0 - lam) * d_end
    g_d_start = g_w_c_per_slope * lam + g_w_b * w_b / (2.0 * d_start)
    g_d_end = g_w_c_per_slope * (1.0 - lam) * w_b - g_w_b * w_b / (2.0 * d_end)
    return g_t, g_x_start - g_width, g_width, g_y_start - g_height, g_height, g_d_start, g_d_end, g_lam


_AUTOGRAD = autograd_bin_map(_bin_map)


def linear_rational_spline(inputs, params, inverse, settings, bin_map=_AUTOGRAD):
    """LRS on the box [-tail_bound, tail_bound]; inputs must lie in the box. `bin_map` maps inputs with the
    selected bin's quantities: autograd differentiates the default (the reference); `analytic` has its own backward."""
    width_logits, height_logits, lambda_logits, derivative_logits = _split(params, settings)
    selected = locate_bin(inputs, width_logits, height_logits, derivative_logits, inverse, settings)
    lam = _lambda(gather_bin(lambda_logits, selected.index))  # only the selected bin's lambda
    return bin_map(inputs, *selected[1:], lam, inverse=inverse)


analytic = partial(linear_rational_spline, bin_map=analytic_bin_map(_bin_map, _bin_map_gradients))

# LRS code (hmdolatabadi/LRS_NF): widths and heights scaled by 1/sqrt(hidden), torch.rand init.
LRS = Family("lrs", "LRS", linear_rational_spline, knots, 4, 2, "uniform", analytic)
