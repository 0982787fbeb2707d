"""Element-wise monotone splines as pure tensor functions: LRS, rational-quadratic and quadratic."""

from . import linear_rational, quadratic, rational_quadratic
from .evaluate import spline, spline_knots
from .knots import Knots
from .registry import FAMILIES, Family, num_params, register, spline_family
from .settings import DEFAULT_SETTINGS, TAILS_CHOICES, SplineSettings

# Registration order is the order of choices and of result tables.
register(linear_rational.LRS)
register(rational_quadratic.RQ)
register(quadratic.Q_NSF)
register(quadratic.Q_NSF_C1)

__all__ = [
    "DEFAULT_SETTINGS",
    "FAMILIES",
    "TAILS_CHOICES",
    "Family",
    "Knots",
    "SplineSettings",
    "num_params",
    "register",
    "spline",
    "spline_family",
    "spline_knots",
]
