"""Element-wise monotone splines as pure tensor functions: LRS, rational-quadratic and quadratic."""

from .knots import Knots
from .registry import FAMILIES, TAILS_CHOICES, num_bins, num_params, spline, spline_knots

__all__ = ["FAMILIES", "TAILS_CHOICES", "Knots", "num_bins", "num_params", "spline", "spline_knots"]
