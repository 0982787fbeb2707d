"""Per-bin maps with a hand-written backward, so autograd records one node per spline call instead of dozens.

The knot construction and gather upstream stay ordinary autograd; only the map from the located bin's quantities to
(outputs, log-derivative) is one `torch.autograd.Function`, whose backward returns the gradients with respect to
the input and every gathered quantity at once. It is once-differentiable: for second-order gradients call
`spline(..., analytic_gradients=False)`, which differentiates the same maths with autograd.
"""

from collections.abc import Callable

import torch
from torch.autograd.function import once_differentiable


def analytic_bin_map(value: Callable, gradients: Callable) -> Callable:
    """A function `(inputs, *bin quantities, inverse) -> (outputs, log_derivative)` with an analytic backward.

    `value(inputs, *quantities, inverse)` returns (outputs, log_derivative, saved), `saved` being the few tensors
    the backward needs (it recomputes the cheap intermediates); `gradients(grad_outputs, grad_log_derivative,
    *saved, inverse)` returns the gradients of `inputs, *quantities`, in that order.
    """

    class BinMap(torch.autograd.Function):
        @staticmethod
        def forward(ctx, inverse, inputs, *quantities):
            outputs, log_derivative, saved = value(inputs, *quantities, inverse)
            ctx.inverse = inverse
            ctx.save_for_backward(*saved)
            return outputs, log_derivative

        @staticmethod
        @once_differentiable
        def backward(ctx, grad_outputs, grad_log_derivative):
            return None, *gradients(grad_outputs, grad_log_derivative, *ctx.saved_tensors, ctx.inverse)

    def apply(inputs, *quantities, inverse):
        return BinMap.apply(inverse, inputs, *quantities)

    return apply


def autograd_bin_map(value: Callable) -> Callable:
    """The same per-bin map for autograd to differentiate (the reference, and the way to higher orders)."""

    def apply(inputs, *quantities, inverse):
        outputs, log_derivative, _ = value(inputs, *quantities, inverse)
        return outputs, log_derivative

    return apply
