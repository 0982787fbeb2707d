"""Knot construction and bin lookup shared by every spline family.

All tensors carry one element's spline along the last dimension, so the same code serves
coupling layers ([B, D, K]) and image layers ([B, C, H, W, K]).
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F


def bin_knots(logits: torch.Tensor, min_size: float, low: float, high: float) -> torch.Tensor:
    """Knots low = k_0 < ... < k_K = high from unnormalised bin sizes (softmax + minimum size).

    cumsum(softmax) is taken as cumsum(exp) / total, one pass over the bins; the end knots are set
    exactly, so a value on the box boundary lands on a knot.
    """
    num_bins = logits.shape[-1]
    if min_size * num_bins > 1.0:
        raise ValueError(
            f"minimum bin size {min_size} times {num_bins} bins exceeds 1; lower the minimum or the bin count."
        )
    weights = torch.exp(logits - logits.amax(dim=-1, keepdim=True))
    cumulative = torch.cumsum(weights, dim=-1)
    # knot k = low + (high - low) * (k * min_size + (1 - K * min_size) * cumsum_k / total), fused in one addcmul.
    offsets = low + (high - low) * min_size * torch.arange(1, num_bins, dtype=cumulative.dtype, device=cumulative.device)
    scale = ((high - low) * (1.0 - min_size * num_bins)) / cumulative[..., -1:]
    inner = torch.addcmul(offsets, cumulative[..., :-1], scale)
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


def bin_derivatives(logits, index, min_derivative: float, linear_tails: bool):
    """knot_derivatives at the selected bin's two knots only: softplus runs on 2 values, not K+1."""
    if not linear_tails:
        start, end = gather_edges(logits, index)
        return min_derivative + F.softplus(start), min_derivative + F.softplus(end)
    interior = logits.shape[-1]  # K - 1 interior knots; knot k has logit k - 1
    if interior == 0:
        ones = torch.ones(index.shape[:-1], dtype=logits.dtype, device=logits.device)
        return ones, ones
    both = torch.gather(logits, -1, torch.cat([index - 1, index], dim=-1).clamp(0, interior - 1))
    derivatives = min_derivative + F.softplus(both)
    bin_index = index.squeeze(-1)
    start = torch.where(bin_index == 0, 1.0, derivatives[..., 0])
    end = torch.where(bin_index == interior, 1.0, derivatives[..., 1])
    return start, end


def find_bin(knots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Index k of the bin [k_k, k_{k+1}) holding each value, shape values.shape + (1,).

    One rule for both directions: a value on a knot belongs to the bin it starts, the top knot to
    the last bin. No knot is shifted by an epsilon, unlike the original code.
    """
    index = torch.searchsorted(knots, values.unsqueeze(-1), right=True) - 1
    return index.clamp(0, knots.shape[-1] - 2)


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


def locate_bin(inputs, width_logits, height_logits, derivative_logits, inverse, bound, linear_tails, min_bin_width, min_bin_height, min_derivative) -> Bin:
    """Build the knots, find each input's bin (by y-knots when inverting) and gather what RQ and LRS need."""
    x_knots = bin_knots(width_logits, min_bin_width, -bound, bound)
    y_knots = bin_knots(height_logits, min_bin_height, -bound, bound)
    index = find_bin(y_knots if inverse else x_knots, inputs)
    return Bin(
        index,
        *gather_edges(x_knots, index),
        *gather_edges(y_knots, index),
        *bin_derivatives(derivative_logits, index, min_derivative, linear_tails),
    )
