"""Quadratic spline (Q-NSF; Mueller et al. 2019): the CDF of a piecewise-linear density.

docs/method.md §Quadratic spline. The vertex values v_k of the density are its derivatives at the knots. With linear
tails the two boundary vertices share one constant, and two rules for it exist:

- boundary="nsf" (family `quadratic`): the Neural Spline Flows code's constant
  (bayesiains/nsf, nde/transforms/splines/quadratic.py). It means to make the normalised boundary
  density 1 but halves the end widths twice, so the boundary slopes come out below 1 (0.88 with
  every logit 0 at K = 8, quartiles 0.85-0.94 at N(0, 1) logits, 0.5-1 in general) and the spline
  meets the identity tails with a kink. The published Q-NSF numbers came from this code,
  so `model=q_nsf` reproduces it (scripts/original_splines.py's original_quadratic re-implements it;
  tests/test_original_formulation.py checks the agreement).
- boundary="c1" (family `quadratic_c1`): our correction, the constant that makes the normalised
  boundary density exactly 1, so the spline joins the identity tails C1 as RQ and LRS do.

Both otherwise follow NSF: widths softmax + minimum, vertex values exp(logits) (taken as
exp(v - max v), equal after normalisation but unable to overflow), density normalised to unit
area and floored at min_bin_height.
"""

from functools import partial

import torch
import torch.nn.functional as F

from .bins import bin_knots, find_bin, gather_edges, safe_sqrt
from .knots import Knots
from .registry import Family

# The boundary constant puts `halving` of each end bin's width against its boundary vertex: 0.5 is the
# trapezoid rule (boundary density exactly 1); NSF's code halves the end widths once more.
_END_WIDTH_FACTOR = {"nsf": 0.25, "c1": 0.5}


def knots(params, settings, boundary) -> Knots:
    """Layout per element: K width logits | K-1 (or K+1) log vertex densities. min_derivative is unused."""
    num_bins, min_bin_width, min_bin_height = settings.num_bins, settings.min_bin_width, settings.min_bin_height
    width_logits, vertex_logits = params.split([num_bins, params.shape[-1] - num_bins], dim=-1)
    unit_knots = bin_knots(width_logits, min_bin_width, 0.0, 1.0)
    # The widths themselves, as NSF's code takes them, not differences of the knots: a 1e-3 bin near the
    # top knot 1 would lose 1e-4 of its width in float32, and with it the density's normalisation.
    widths = min_bin_width + (1.0 - min_bin_width * num_bins) * torch.softmax(width_logits, dim=-1)
    # exp(v - max v): the density is normalised below, so this is exact and cannot overflow.
    vertices = torch.exp(vertex_logits - vertex_logits.amax(dim=-1, keepdim=True))
    if settings.linear_tails:
        halving = _END_WIDTH_FACTOR[boundary]
        ends = halving * (widths[..., :1] * vertices[..., :1] + widths[..., -1:] * vertices[..., -1:])
        interior = (0.5 * (vertices[..., :-1] + vertices[..., 1:]) * widths[..., 1:-1]).sum(-1, keepdim=True)
        constant = (ends + interior) / (1.0 - halving * (widths[..., :1] + widths[..., -1:]))
        vertices = torch.cat([constant, vertices, constant], dim=-1)
    areas = 0.5 * (vertices[..., :-1] + vertices[..., 1:]) * widths
    vertices = vertices / areas.sum(-1, keepdim=True)
    vertices = min_bin_height + (1.0 - min_bin_height) * vertices
    areas = 0.5 * (vertices[..., :-1] + vertices[..., 1:]) * widths
    cdf = F.pad(F.pad(torch.cumsum(areas[..., :-1], dim=-1), (1, 0), value=0.0), (0, 1), value=1.0)
    # The box maps onto itself, so the density (= slope) is unchanged by the rescaling.
    bound = settings.tail_bound
    return Knots(x=-bound + 2.0 * bound * unit_knots, y=-bound + 2.0 * bound * cdf, derivatives=vertices)


def quadratic_spline(inputs, params, inverse, settings, boundary):
    """Quadratic spline on the box [-tail_bound, tail_bound]; inputs must lie in the box."""
    geometry = knots(params, settings, boundary)
    index = find_bin(geometry.y if inverse else geometry.x, inputs)
    x_start, x_end = gather_edges(geometry.x, index)
    y_start, y_end = gather_edges(geometry.y, index)
    v_start, v_end = gather_edges(geometry.derivatives, index)
    width, height = x_end - x_start, y_end - y_start
    # The bin's area w (v_k + v_k+1) / 2 equals its height only up to rounding (a tiny bin near the box
    # edge loses relative precision in x_k+1 - x_k); scaling the density to the knots' height makes
    # the spline pass through every knot exactly, as RQ and LRS do. That scale is 1 up to the rounding
    # of y_k+1 - y_k, which is a large relative error in a flat bin (height ~1e-5 in float32: a few
    # percent), so the log-det takes the density itself, v_k + (v_k+1 - v_k) alpha, as NSF's code does.
    scale = height / (0.5 * (v_start + v_end))
    change = v_end - v_start

    if inverse:
        fraction = torch.minimum((inputs - y_start).clamp_min(0.0), height) / scale
        # 0.5 change a^2 + v_start a - fraction = 0; this root never cancels since v_start > 0.
        alpha = 2.0 * fraction / (v_start + safe_sqrt(v_start * v_start + 2.0 * change * fraction))
        alpha = alpha.clamp(0.0, 1.0)
        return x_start + alpha * width, -torch.log(v_start + change * alpha)

    alpha = ((inputs - x_start) / width).clamp(0.0, 1.0)
    return y_start + scale * alpha * (v_start + 0.5 * change * alpha), torch.log(v_start + change * alpha)


def _family(name, label, boundary):
    """Both rules scale every parameter by 1/sqrt(hidden) and draw torch.randn init, as NSF's PiecewiseQuadraticCDF."""
    return Family(
        name, label, partial(quadratic_spline, boundary=boundary), partial(knots, boundary=boundary), 2, None, "normal"
    )


# NSF's quadratic spline, the code behind the published Q-NSF numbers, and our C1 correction of its boundary.
Q_NSF = _family("quadratic", "Q-NSF", "nsf")
Q_NSF_C1 = _family("quadratic_c1", "Q-NSF C¹", "c1")
