"""Knot construction and bin lookup shared by every spline family.

All tensors carry one element's spline along the last dimension, so the same code serves
coupling layers ([B, D, K]) and image layers ([B, C, H, W, K]).
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .settings import SplineSettings


def interior_knots(logits: torch.Tensor, min_size: float, low: float, high: float) -> torch.Tensor:
    """The K-1 knots between low and high from unnormalised bin sizes (softmax + minimum size).

    cumsum(softmax) is taken as cumsum(exp) / total, one pass over the bins. SplineSettings keeps min_size * K
    below 1. The knots do not depend on the shift by the maximum, so its gradient is exactly 0: detaching it
    spares autograd amax's backward (a third of this function's backward time), not a change of the maths.
    """
    num_bins = logits.shape[-1]
    weights = torch.exp(logits - logits.amax(dim=-1, keepdim=True).detach())
    cumulative = torch.cumsum(weights, dim=-1)
    # knot k = low + (high - low) * (k * min_size + (1 - K * min_size) * cumsum_k / total), fused in one addcmul.
    offsets = low + (high - low) * min_size * torch.arange(
        1, num_bins, dtype=cumulative.dtype, device=cumulative.device
    )
    scale = ((high - low) * (1.0 - min_size * num_bins)) / cumulative[..., -1:]
    return torch.addcmul(offsets, cumulative[..., :-1], scale)


def bin_knots(logits: torch.Tensor, min_size: float, low: float, high: float) -> torch.Tensor:
    """All K+1 knots low = k_0 < ... < k_K = high; the end knots are set exactly, so a value on the box
    boundary lands on a knot."""
    inner = interior_knots(logits, min_size, low, high)
    return torch.cat([torch.full_like(inner[..., :1], low), inner, torch.full_like(inner[..., :1], high)], dim=-1)


def knot_derivatives(logits: torch.Tensor, min_derivative: float, linear_tails: bool) -> torch.Tensor:
    """Positive derivatives at all K+1 knots; with linear tails the two boundary ones are exactly 1.

    The original pads the logits with log(exp(1 - min_derivative) - 1) so that softplus gives
    1 up to rounding; padding the derivatives with 1.0 gives the C1 join with the identity exactly.
    """
    derivatives = min_derivative + F.softplus(logits)
    if linear_tails:
        derivatives = F.pad(derivatives, (1, 1), value=1.0)
    return derivatives


class Edges(NamedTuple):
    """Where each element's bin starts and ends among K-1 interior values with fixed end values: the gather
    index of both edges and whether the bin is the first or the last one, computed once per spline call."""

    index: torch.Tensor
    first: torch.Tensor
    last: torch.Tensor


def bin_edges(index: torch.Tensor, num_bins: int) -> Edges:
    both = torch.cat([index - 1, index], dim=-1).clamp(0, max(num_bins - 2, 0))
    bin_index = index.squeeze(-1)
    return Edges(both, bin_index == 0, bin_index == num_bins - 1)


def gather_between_ends(interior: torch.Tensor, edges: Edges, start_value: float, end_value: float):
    """The values at the selected bin's two ends, where the first and last ends are the fixed end values
    and the others come from `interior` (no [N, K+1] tensor with the ends concatenated is built)."""
    if interior.shape[-1] == 0:
        ones = torch.ones(edges.first.shape, dtype=interior.dtype, device=interior.device)
        return ones * start_value, ones * end_value
    both = torch.gather(interior, -1, edges.index)
    return torch.where(edges.first, start_value, both[..., 0]), torch.where(edges.last, end_value, both[..., 1])


def bin_derivatives(logits, index, min_derivative: float, linear_tails: bool, edges: Edges | None = None):
    """knot_derivatives at the selected bin's two knots only: softplus runs on 2 values, not K+1."""
    if not linear_tails:
        start, end = gather_edges(logits, index)
        return min_derivative + F.softplus(start), min_derivative + F.softplus(end)
    edges = edges if edges is not None else bin_edges(index, logits.shape[-1] + 1)
    if logits.shape[-1] == 0:
        return gather_between_ends(logits, edges, 1.0, 1.0)
    both = min_derivative + F.softplus(torch.gather(logits, -1, edges.index))
    return torch.where(edges.first, 1.0, both[..., 0]), torch.where(edges.last, 1.0, both[..., 1])


def find_bin(knots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Index k of the bin [k_k, k_{k+1}) holding each value, shape values.shape + (1,).

    One rule for both directions: a value on a knot belongs to the bin it starts, the top knot to
    the last bin. No knot is shifted by an epsilon, unlike the original code.
    """
    index = torch.searchsorted(knots, values.unsqueeze(-1), right=True) - 1
    return index.clamp(0, knots.shape[-1] - 2)


def find_bin_among_interior(interior: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """find_bin from the K-1 interior knots alone: the number of them at or below the value (clamped values
    lie in [low, high], so this is the bin index in 0..K-1 by the same rule)."""
    return torch.searchsorted(interior, values.unsqueeze(-1), right=True)


def gather_bin(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The entry of `tensor` (last dim over bins or knots) at `index`, without the trailing dim."""
    return torch.gather(tensor, -1, index).squeeze(-1)


def gather_edges(knots: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The knots that start and end the selected bin, gathered in one call."""
    both = torch.gather(knots, -1, torch.cat([index, index + 1], dim=-1))
    return both[..., 0], both[..., 1]


def safe_sqrt(value: torch.Tensor) -> torch.Tensor:
    """sqrt(max(value, 0)) whose gradient is 0, not NaN, where rounding made the value <= 0."""
    positive = value > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, value, torch.ones_like(value))), 0.0)


class Bin(NamedTuple):
    """The selected bin of each element: its knots and the derivatives at them."""

    index: torch.Tensor
    x_start: torch.Tensor
    x_end: torch.Tensor
    y_start: torch.Tensor
    y_end: torch.Tensor
    d_start: torch.Tensor
    d_end: torch.Tensor


def locate_bin(inputs, width_logits, height_logits, derivative_logits, inverse, settings: SplineSettings) -> Bin:
    """Build the interior knots, find each input's bin (by y-knots when inverting) and gather what RQ and LRS need."""
    bound = settings.tail_bound
    x_inner = interior_knots(width_logits, settings.min_bin_width, -bound, bound)
    y_inner = interior_knots(height_logits, settings.min_bin_height, -bound, bound)
    index = find_bin_among_interior(y_inner if inverse else x_inner, inputs)
    edges = bin_edges(index, width_logits.shape[-1])
    return Bin(
        index,
        *gather_between_ends(x_inner, edges, -bound, bound),
        *gather_between_ends(y_inner, edges, -bound, bound),
        *bin_derivatives(derivative_logits, index, settings.min_derivative, settings.linear_tails, edges),
    )
