"""The spline families by name: adding one is a module with its maps and one `register(...)` call."""

from collections.abc import Callable
from dataclasses import dataclass

from .settings import DEFAULT_SETTINGS, SplineSettings


@dataclass(frozen=True)
class Family:
    """A spline family: its name and table label, its box function `transform(inputs, params, inverse, settings)`
    and knot geometry `knots(params, settings)`, its parameters per bin, how many leading parameters per bin are
    bin-size logits (those the original coupling layers divide by sqrt(hidden features); None: every parameter)
    and the distribution its original code initialises a coupling's unconditional map with ("uniform" U[0, 1)
    or "normal" N(0, 1)). `analytic_transform`, where a family has one, is the same map with a hand-written
    backward (splines/gradients.py); `transform` stays the autograd-differentiated reference."""

    name: str
    label: str
    transform: Callable
    knots: Callable
    params_per_bin: int
    size_logits_per_bin: int | None
    original_init: str
    analytic_transform: Callable | None = None

    def num_params(self, settings: SplineSettings) -> int:
        """Parameters per element: a*K - 1 with linear tails (boundary derivatives fixed), a*K + 1 without."""
        return self.params_per_bin * settings.num_bins + (-1 if settings.linear_tails else 1)

    def num_size_logits(self, settings: SplineSettings) -> int:
        """How many leading parameters per element are bin-size logits."""
        if self.size_logits_per_bin is None:
            return self.num_params(settings)
        return self.size_logits_per_bin * settings.num_bins


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Adds `family` under its name (registration order is the order of choices and tables)."""
    if family.name in FAMILIES:
        raise ValueError(f"a spline family named {family.name!r} is already registered; choose another name.")
    FAMILIES[family.name] = family
    return family


def spline_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown spline family {name!r}; choose one of {list(FAMILIES)}.")
    return FAMILIES[name]


def num_params(name: str, settings: SplineSettings = DEFAULT_SETTINGS) -> int:
    """Parameters per element of family `name` with `settings`."""
    return spline_family(name).num_params(settings)
