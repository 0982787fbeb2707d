"""The settings every spline family shares, validated once where they are made."""

from dataclasses import dataclass, fields

TAILS_CHOICES = ("linear", None)


@dataclass(frozen=True)
class SplineSettings:
    """Bins K, tails ("linear": identity outside the box with boundary derivatives 1; None: free boundary
    derivatives), the box [-tail_bound, tail_bound] and the minimum bin width, bin height and knot derivative."""

    num_bins: int = 8
    tails: str | None = "linear"
    tail_bound: float = 3.0
    min_bin_width: float = 1e-3
    min_bin_height: float = 1e-3
    min_derivative: float = 1e-3

    def __post_init__(self):
        if self.tails not in TAILS_CHOICES:
            raise ValueError(f"unknown tails {self.tails!r}; choose one of {TAILS_CHOICES}.")
        if self.num_bins < 1:
            raise ValueError(f"num_bins must be at least 1, got {self.num_bins}.")
        for name in ("min_bin_width", "min_bin_height"):
            if getattr(self, name) * self.num_bins >= 1.0:
                raise ValueError(
                    f"{name}={getattr(self, name)} times {self.num_bins} bins is not below 1; lower the minimum or the bin count."
                )

    @property
    def linear_tails(self) -> bool:
        return self.tails == "linear"

    @classmethod
    def of(cls, source) -> "SplineSettings":
        """The settings named like `source`'s attributes (e.g. a model config); absent ones keep the default."""
        return cls(**{field.name: getattr(source, field.name) for field in fields(cls) if hasattr(source, field.name)})


DEFAULT_SETTINGS = SplineSettings()
