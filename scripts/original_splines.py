"""The original code's spline formulation, re-implemented for benchmarks and comparison tests only.

These functions reproduce what the original code computes, step by step, on our parameter layout,
returning elementwise (outputs, logabsdet):

- original_lrs, original_rq: the LRS fork of the Neural Spline Flows code (hmdolatabadi/LRS_NF;
  docs/method.md §Knots, §Rational-quadratic spline, §Linear rational spline): boolean-mask
  indexing of the elements inside the box, derivative logits padded with log(exp(1 - min_derivative) - 1),
  bin search as sum(x >= knots) - 1 after nudging the last knot by 1e-6, both LRS pieces evaluated
  everywhere and blended with float masks, the LRS inverse in the expanded absolute-y form, and the RQ
  inverse with |b^2 - 4ac|.
- original_quadratic: Neural Spline Flows' quadratic spline (bayesiains/nsf,
  nde/transforms/splines/quadratic.py, the code behind the published Q-NSF numbers;
  docs/method.md §Quadratic spline):
  the same mask indexing and nudged bin search, the box mapped to [0, 1], vertex values exp(v), the
  boundary constant with the end widths halved twice (boundary slopes below 1: 0.5-1, typically 0.85-0.94), and the
  inverse root (-b + sqrt(b^2 - 4ac)) / 2a. nflows 0.14's quadratic spline is not this function: it
  maps vertex logits with softplus + 1e-3 instead of exp.

The library does not use them: the data-dependent mask indexing costs copies (and a device-host
sync on GPU) and gives torch.compile data-dependent shapes, evaluating both LRS pieces doubles the
arithmetic, the expanded LRS inverse (w_c - w_a) y + w_a y_a - w_c y_c cancels catastrophically
in float32 when a bin is small relative to |y| (docs/method.md §Linear rational spline), giving
Inf/NaN at large logits, and
the quadratic inverse's root cancels when a bin's density is nearly flat (a -> 0).
lrsflows.splines writes the same maps with offsets from the bin's start instead.
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

LAMBDA_SCALE = 0.95
LAMBDA_OFFSET = 0.025
SEARCH_EPS = 1e-6


def _with_linear_tails(inputs, logit_groups, spline_in_box, tail_bound, min_derivative):
    """Identity outside [-B, B]; the box spline runs only on the elements gathered by a boolean mask.

    logit_groups ends with the K-1 interior derivative logits, padded here with the logit whose
    softplus makes the boundary derivatives 1 (up to rounding).
    """
    boundary_logit = math.log(math.exp(1.0 - min_derivative) - 1.0)
    *shape_logits, derivative_logits = logit_groups
    groups = [*shape_logits, F.pad(derivative_logits, (1, 1), value=boundary_logit)]
    return _identity_outside(inputs, groups, spline_in_box, tail_bound)


def _identity_outside(inputs, groups, spline_in_box, tail_bound):
    """Identity (log-det 0) outside [-B, B]; spline_in_box gets the inside elements and their logit groups."""
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    outside = ~inside
    outputs = torch.zeros_like(inputs)
    logabsdet = torch.zeros_like(inputs)
    outputs[outside] = inputs[outside]
    logabsdet[outside] = 0.0
    outputs[inside], logabsdet[inside] = spline_in_box(inputs[inside], *(group[inside, :] for group in groups))
    return outputs, logabsdet


def _check_domain(inputs, bound):
    """The original raises InputOutsideDomain here; the min/max forces a host sync on every call."""
    if torch.min(inputs) < -bound or torch.max(inputs) > bound:
        raise ValueError("inputs outside the spline's box")


def _cumulative_knots(logits, min_size, low, high):
    """Softmax + minimum size, cumsum padded with 0, end knots overwritten, sizes re-differenced."""
    num_bins = logits.shape[-1]
    if min_size * num_bins > 1.0:
        raise ValueError("minimal bin size too large for the number of bins")
    sizes = min_size + (1 - min_size * num_bins) * F.softmax(logits, dim=-1)
    knots = (high - low) * F.pad(torch.cumsum(sizes, dim=-1), (1, 0), value=0.0) + low
    ends = torch.full_like(knots[..., :1], low), torch.full_like(knots[..., :1], high)
    knots = torch.cat([ends[0], knots[..., 1:-1], ends[1]], dim=-1)
    return knots, knots[..., 1:] - knots[..., :-1]


def _search_bins(knots, values):
    """Bin index as sum(values >= knots) - 1 after adding eps to the last knot (the original does so in place)."""
    nudged = torch.cat([knots[..., :-1], knots[..., -1:] + SEARCH_EPS], dim=-1)
    return (torch.sum(values[..., None] >= nudged, dim=-1) - 1)[..., None]


def _pick(tensor, index):
    """The entry of `tensor` in each element's bin."""
    return tensor.gather(-1, index)[..., 0]


class _Bin(NamedTuple):
    """Each element's bin: index, left knots, sizes, slope and end derivatives."""

    index: torch.Tensor
    x_start: torch.Tensor
    width: torch.Tensor
    y_start: torch.Tensor
    height: torch.Tensor
    slope: torch.Tensor
    d_start: torch.Tensor
    d_end: torch.Tensor


def _bin_geometry(inputs, width_logits, height_logits, derivative_logits, inverse, bound, minimums):
    """Per-element bin quantities exactly as the original gathers them."""
    min_bin_width, min_bin_height, min_derivative = minimums
    _check_domain(inputs, bound)
    x_knots, widths = _cumulative_knots(width_logits, min_bin_width, -bound, bound)
    y_knots, heights = _cumulative_knots(height_logits, min_bin_height, -bound, bound)
    derivatives = min_derivative + F.softplus(derivative_logits)
    index = _search_bins(y_knots if inverse else x_knots, inputs)
    return _Bin(
        index=index,
        x_start=_pick(x_knots, index),
        width=_pick(widths, index),
        y_start=_pick(y_knots, index),
        height=_pick(heights, index),
        slope=_pick(heights / widths, index),
        d_start=_pick(derivatives, index),
        d_end=_pick(derivatives[..., 1:], index),
    )


def _lrs_in_box(inputs, width_logits, height_logits, lambda_logits, derivative_logits, inverse, bound, minimums):
    """docs/method.md §Linear rational spline as coded: both pieces computed, float masks, absolute y in the inverse."""
    in_bin = _bin_geometry(inputs, width_logits, height_logits, derivative_logits, inverse, bound, minimums)
    lam = _pick(LAMBDA_SCALE * torch.sigmoid(lambda_logits) + LAMBDA_OFFSET, in_bin.index)
    w_a = 1
    w_b = torch.sqrt(in_bin.d_start / in_bin.d_end) * w_a
    w_c = (lam * w_a * in_bin.d_start + (1 - lam) * w_b * in_bin.d_end) / in_bin.slope
    y_a = in_bin.y_start
    y_b = in_bin.height + in_bin.y_start
    y_c = ((1 - lam) * w_a * y_a + lam * w_b * y_b) / ((1 - lam) * w_a + lam * w_b)

    if inverse:
        y = inputs
        first, second = (y <= y_c).float(), (y > y_c).float()
        numerator = (lam * w_a * (y_a - y)) * first + ((w_c - lam * w_b) * y + lam * w_b * y_b - w_c * y_c) * second
        denominator = ((w_c - w_a) * y + w_a * y_a - w_c * y_c) * first + (
            (w_c - w_b) * y + w_b * y_b - w_c * y_c
        ) * second
        outputs = numerator / denominator * in_bin.width + in_bin.x_start
    else:
        theta = (inputs - in_bin.x_start) / in_bin.width
        first, second = (theta <= lam).float(), (theta > lam).float()
        numerator = (w_a * y_a * (lam - theta) + w_c * y_c * theta) * first + (
            w_c * y_c * (1 - theta) + w_b * y_b * (theta - lam)
        ) * second
        denominator = (w_a * (lam - theta) + w_c * theta) * first + (w_c * (1 - theta) + w_b * (theta - lam)) * second
        outputs = numerator / denominator
    piece_numerator = w_a * w_c * lam * (y_c - y_a) * first + w_b * w_c * (1 - lam) * (y_b - y_c) * second
    # dx/dy = piece_numerator * width / den^2 for the inverse, dy/dx = piece_numerator / (width * den^2) forward.
    derivative_numerator = piece_numerator * in_bin.width if inverse else piece_numerator / in_bin.width
    return outputs, torch.log(derivative_numerator) - 2 * torch.log(torch.abs(denominator))


def _rq_in_box(inputs, width_logits, height_logits, derivative_logits, inverse, bound, minimums):
    """docs/method.md §Rational-quadratic spline as coded, with the LRS fork's |b^2 - 4ac| (its >= 0 assertion is
    then vacuous)."""
    in_bin = _bin_geometry(inputs, width_logits, height_logits, derivative_logits, inverse, bound, minimums)
    slope, d_start, d_end = in_bin.slope, in_bin.d_start, in_bin.d_end
    curvature = d_start + d_end - 2 * slope

    if inverse:
        rise = inputs - in_bin.y_start
        a = rise * curvature + in_bin.height * (slope - d_start)
        b = in_bin.height * d_start - rise * curvature
        c = -slope * rise
        discriminant = torch.abs(b.pow(2) - 4 * a * c)
        theta = (2 * c) / (-b - torch.sqrt(discriminant))
    else:
        theta = (inputs - in_bin.x_start) / in_bin.width

    theta_one_minus_theta = theta * (1 - theta)
    denominator = slope + curvature * theta_one_minus_theta
    derivative_numerator = slope.pow(2) * (
        d_end * theta.pow(2) + 2 * slope * theta_one_minus_theta + d_start * (1 - theta).pow(2)
    )
    logabsdet = torch.log(derivative_numerator) - 2 * torch.log(denominator)
    if inverse:
        return theta * in_bin.width + in_bin.x_start, -logabsdet
    outputs = in_bin.y_start + in_bin.height * (slope * theta.pow(2) + d_start * theta_one_minus_theta) / denominator
    return outputs, logabsdet


def original_lrs(
    inputs, params, inverse=False, tail_bound=3.0, min_bin_width=1e-3, min_bin_height=1e-3, min_derivative=1e-3
):
    """The original unconstrained rational linear spline (linear tails); params last dim 4K-1."""
    num_bins = (params.shape[-1] + 1) // 4
    logit_groups = params.split([num_bins, num_bins, num_bins, num_bins - 1], dim=-1)
    minimums = (min_bin_width, min_bin_height, min_derivative)

    def spline_in_box(values, *groups):
        return _lrs_in_box(values, *groups, inverse, tail_bound, minimums)

    return _with_linear_tails(inputs, logit_groups, spline_in_box, tail_bound, min_derivative)


def original_rq(
    inputs, params, inverse=False, tail_bound=3.0, min_bin_width=1e-3, min_bin_height=1e-3, min_derivative=1e-3
):
    """The original unconstrained rational-quadratic spline (linear tails); params last dim 3K-1."""
    num_bins = (params.shape[-1] + 1) // 3
    logit_groups = params.split([num_bins, num_bins, num_bins - 1], dim=-1)
    minimums = (min_bin_width, min_bin_height, min_derivative)

    def spline_in_box(values, *groups):
        return _rq_in_box(values, *groups, inverse, tail_bound, minimums)

    return _with_linear_tails(inputs, logit_groups, spline_in_box, tail_bound, min_derivative)


def _quadratic_in_box(inputs, width_logits, vertex_logits, inverse, bound, min_bin_width, min_bin_height):
    """NSF's quadratic_spline verbatim with left = bottom = -bound, right = top = bound (linear tails:
    K-1 vertex logits, the two boundary vertices set by the constant below)."""
    _check_domain(inputs, bound)
    left, right, bottom, top = -bound, bound, -bound, bound
    inputs = (inputs - bottom) / (top - bottom) if inverse else (inputs - left) / (right - left)
    num_bins = width_logits.shape[-1]
    if min_bin_width * num_bins > 1.0 or min_bin_height * num_bins > 1.0:
        raise ValueError("minimal bin size too large for the number of bins")

    widths = F.softmax(width_logits, dim=-1)
    widths = min_bin_width + (1 - min_bin_width * num_bins) * widths
    vertices = torch.exp(vertex_logits)
    # "Set boundary heights s.t. after normalization they are exactly 1": the end widths are halved
    # twice (here and in the numerator/denominator), so the boundary density comes out below 1.
    first_widths, last_widths = 0.5 * widths[..., 0], 0.5 * widths[..., -1]
    numerator = (
        0.5 * first_widths * vertices[..., 0]
        + 0.5 * last_widths * vertices[..., -1]
        + torch.sum(((vertices[..., :-1] + vertices[..., 1:]) / 2) * widths[..., 1:-1], dim=-1)
    )
    constant = (numerator / (1 - 0.5 * first_widths - 0.5 * last_widths))[..., None]
    vertices = torch.cat([constant, vertices, constant], dim=-1)

    area = torch.sum(((vertices[..., :-1] + vertices[..., 1:]) / 2) * widths, dim=-1)[..., None]
    heights = min_bin_height + (1 - min_bin_height) * vertices / area
    bin_left_cdf = torch.cumsum(((heights[..., :-1] + heights[..., 1:]) / 2) * widths, dim=-1)
    bin_left_cdf[..., -1] = 1.0
    bin_left_cdf = F.pad(bin_left_cdf, (1, 0), value=0.0)
    bin_locations = torch.cumsum(widths, dim=-1)
    bin_locations[..., -1] = 1.0
    bin_locations = F.pad(bin_locations, (1, 0), value=0.0)

    index = _search_bins(bin_left_cdf if inverse else bin_locations, inputs)
    location, width, left_cdf = _pick(bin_locations, index), _pick(widths, index), _pick(bin_left_cdf, index)
    left_height, right_height = _pick(heights, index), _pick(heights, index + 1)
    a = 0.5 * (right_height - left_height) * width
    b = left_height * width
    c = left_cdf

    if inverse:
        alpha = (-b + torch.sqrt(b.pow(2) - 4 * a * (c - inputs))) / (2 * a)
        outputs = torch.clamp(alpha * width + location, 0, 1)
        logabsdet = -torch.log(alpha * (right_height - left_height) + left_height)
        return outputs * (right - left) + left, logabsdet - math.log(top - bottom) + math.log(right - left)
    alpha = (inputs - location) / width
    outputs = torch.clamp(a * alpha.pow(2) + b * alpha + c, 0, 1)
    logabsdet = torch.log(alpha * (right_height - left_height) + left_height)
    return outputs * (top - bottom) + bottom, logabsdet + math.log(top - bottom) - math.log(right - left)


def original_quadratic(inputs, params, inverse=False, tail_bound=3.0, min_bin_width=1e-3, min_bin_height=1e-3):
    """NSF's unconstrained quadratic spline (linear tails); params last dim 2K-1: K width logits | K-1 vertex logits."""
    num_bins = (params.shape[-1] + 1) // 2
    groups = params.split([num_bins, num_bins - 1], dim=-1)

    def spline_in_box(values, width_logits, vertex_logits):
        return _quadratic_in_box(
            values, width_logits, vertex_logits, inverse, tail_bound, min_bin_width, min_bin_height
        )

    return _identity_outside(inputs, groups, spline_in_box, tail_bound)
