"""2-D synthetic densities (the NSF / LRS plane data sets), each sampled from a seed, with its exact log-density.

Every density draws only from the torch.Generator it is given, computes in float64 and returns float32 samples;
log-densities are float64. Where the original code spreads points deterministically (ring angles on a linspace, an
equal number of points per component or per spiral) we draw them at random instead, so the samples are i.i.d. from
exactly the density that `log_prob` states.
"""

import abc
import math

import torch


def _uniform(num_samples: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(num_samples, generator=generator, dtype=torch.float64)


def _normal(*shape: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


def _distances(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """[n, k] Euclidean distances, computed directly (no |x|^2 - 2 x.c + |c|^2 cancellation) and fast for k = 400."""
    return torch.cdist(points.double(), centres, compute_mode="donot_use_mm_for_euclid_dist")


def _log_normal(values: torch.Tensor, mean, variance: float) -> torch.Tensor:
    return -0.5 * ((values - mean) ** 2 / variance + math.log(2 * math.pi * variance))


class Density2D(abc.ABC):
    """A 2-D density to fit: seeded i.i.d. samples and, where a closed form exists, the exact log-density."""

    name: str
    has_log_prob = True

    @abc.abstractmethod
    def sample(self, num_samples: int, generator: torch.Generator) -> torch.Tensor:
        """float32 [num_samples, 2], drawn only from `generator` so that a seed reproduces them."""

    def log_prob(self, points: torch.Tensor) -> torch.Tensor:
        """float64 [n] exact log-density at points [n, 2]; -inf outside the support."""
        raise NotImplementedError(f"{self.name} has no closed-form log-density (has_log_prob is False)")


class IsotropicGaussianMixture(Density2D):
    """Equal-weight mixture of isotropic Gaussians with one shared sigma (eight_gaussians, diamond)."""

    def __init__(self, centres: torch.Tensor, sigma: float):
        self.centres = centres.double()
        self.sigma = sigma

    def sample(self, num_samples: int, generator: torch.Generator) -> torch.Tensor:
        which = torch.randint(0, len(self.centres), (num_samples,), generator=generator)
        return (self.centres[which] + self.sigma * _normal(num_samples, 2, generator=generator)).float()

    def log_prob(self, points: torch.Tensor) -> torch.Tensor:
        """In chunks, so that a plotting grid against diamond's 400 centres does not hold gigabytes at once."""
        return torch.cat([self._log_prob_chunk(chunk) for chunk in points.split(8192)])

    def _log_prob_chunk(self, points: torch.Tensor) -> torch.Tensor:
        squared = _distances(points, self.centres).pow(2)
        log_components = -0.5 * squared / self.sigma**2 - math.log(2 * math.pi * self.sigma**2)
        return torch.logsumexp(log_components, dim=1) - math.log(len(self.centres))


class RingMixture(Density2D):
    """Equal-weight mixture of noisy circles: a uniform angle on circle k (centre c_k, radius r_k) plus N(0, sigma^2 I).

    Averaging the Gaussian over the angle gives the exact ring kernel
    p_k(x) = exp(-(rho^2 + r_k^2) / (2 sigma^2)) I0(r_k rho / sigma^2) / (2 pi sigma^2),  rho = |x - c_k|,
    evaluated through log I0(z) = log i0e(z) + z so that large z does not overflow.
    """

    def __init__(self, centres: torch.Tensor, radii: torch.Tensor, sigma: float):
        self.centres = centres.double()
        self.radii = radii.double()
        self.sigma = sigma

    def sample(self, num_samples: int, generator: torch.Generator) -> torch.Tensor:
        which = torch.randint(0, len(self.radii), (num_samples,), generator=generator)
        angle = 2 * math.pi * _uniform(num_samples, generator)
        on_circle = self.centres[which] + self.radii[which, None] * torch.stack([angle.cos(), angle.sin()], dim=1)
        return (on_circle + self.sigma * _normal(num_samples, 2, generator=generator)).float()

    def log_prob(self, points: torch.Tensor) -> torch.Tensor:
        variance = self.sigma**2
        distance = _distances(points, self.centres)
        bessel_argument = self.radii * distance / variance
        log_kernel = (
            -(distance**2 + self.radii**2) / (2 * variance)
            + torch.special.i0e(bessel_argument).log()
            + bessel_argument
            - math.log(2 * math.pi * variance)
        )
        return torch.logsumexp(log_kernel, dim=1) - math.log(len(self.radii))


class ConditionalGaussian(Density2D):
    """NSF's conditional family: x1 ~ N(0, 1), x2 | x1 ~ N(conditional_mean(x1), exp(log_variance)).

    NSF emits (x2, x1) for crescent and crescent_cubed and (x1, x2) for the rest; `swap_axes` keeps its orientation.
    """

    log_variance: float
    swap_axes = False

    @staticmethod
    @abc.abstractmethod
    def conditional_mean(x1: torch.Tensor) -> torch.Tensor:
        """Mean of x2 given x1."""

    def sample(self, num_samples: int, generator: torch.Generator) -> torch.Tensor:
        x1 = _normal(num_samples, generator=generator)
        x2 = self.conditional_mean(x1) + math.exp(self.log_variance / 2) * _normal(num_samples, generator=generator)
        pair = (x2, x1) if self.swap_axes else (x1, x2)
        return torch.stack(pair, dim=1).float()

    def log_prob(self, points: torch.Tensor) -> torch.Tensor:
        points = points.double()
        x1, x2 = (points[:, 1], points[:, 0]) if self.swap_axes else (points[:, 0], points[:, 1])
        return _log_normal(x1, 0.0, 1.0) + _log_normal(x2, self.conditional_mean(x1), math.exp(self.log_variance))


class EightGaussians(IsotropicGaussianMixture):
    """Residual Flows / LRS eight Gaussians: centres 4 (cos, sin)(k pi/4) / 1.414, sigma 0.5 / 1.414."""

    name = "eight_gaussians"

    def __init__(self):
        angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
        super().__init__(4.0 / 1.414 * torch.stack([angles.cos(), angles.sin()], dim=1), sigma=0.5 / 1.414)


class Diamond(IsotropicGaussianMixture):
    """NSF's diamond: a 20x20 grid of sigma-0.04 Gaussians spanning [-2.5, 2.5]^2, times 1/sqrt(2) [[1, -1], [1, 1]].

    NSF also shifts every mean by 1e-3 * U(0, 1), drawn afresh per data set; we leave that jitter (40 times smaller
    than sigma) out so that the density is one fixed, known function.
    """

    name = "diamond"

    def __init__(self):
        ticks = torch.linspace(-2.5, 2.5, 20, dtype=torch.float64)
        rotation = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64) / math.sqrt(2)
        super().__init__(torch.cartesian_prod(ticks, ticks) @ rotation, sigma=0.04)


class Rings(RingMixture):
    """Residual Flows / LRS rings: circles of radii 3 * (1, 0.75, 0.5, 0.25) about the origin, noise sigma 0.08.

    The original gives each circle a quarter of the points at evenly spaced angles; we draw the circle and the angle
    uniformly at random, so the samples are i.i.d. and the ring kernel is their exact density.
    """

    name = "rings"

    def __init__(self):
        super().__init__(torch.zeros(4, 2), 3.0 * torch.tensor([1.0, 0.75, 0.5, 0.25]), sigma=0.08)


class FourCircles(RingMixture):
    """NSF's four circles: radius 2, centres (+-1, +-1), noise sigma 0.1 (NSF's constants; uniform angle as in NSF).

    NSF puts exactly a quarter of the points on each circle; we draw the circle at random so samples are i.i.d.
    """

    name = "four_circles"

    def __init__(self):
        centres = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
        super().__init__(centres, 2.0 * torch.ones(4), sigma=0.1)


class Checkerboard(Density2D):
    """NSF's checkerboard: uniform on the 8 black squares (side 2) of a 4x4 board on [-4, 4]^2, so p = 1/32 there."""

    name = "checkerboard"
    square_side = 2.0

    def sample(self, num_samples: int, generator: torch.Generator) -> torch.Tensor:
        x1 = 4 * _uniform(num_samples, generator) - 2
        lower_or_upper = 2 * torch.randint(0, 2, (num_samples,), generator=generator, dtype=torch.float64)
        x2 = _uniform(num_samples, generator) - lower_or_upper + torch.remainder(torch.floor(x1), 2)
        return (self.square_side * torch.stack([x1, x2], dim=1)).float()

    def log_prob(self, points: torch.Tensor) -> torch.Tensor:
        """Squares count as closed: float32 rounding can put a sample exactly on an edge, and it must stay inside."""
        cells = points.double() / self.square_side
        # On an edge, floor and ceil - 1 name the squares on either side; elsewhere they agree.
        columns = (cells[:, 0].floor(), cells[:, 0].ceil() - 1)
        rows = (cells[:, 1].floor(), cells[:, 1].ceil() - 1)
        inside = torch.zeros(len(points), dtype=torch.bool)
        for column in columns:
            for row in rows:
                inside |= self._is_black(column, row)
        outside = torch.full((len(points),), -math.inf, dtype=torch.float64)
        return outside.masked_fill(inside, -math.log(8 * self.square_side**2))

    @staticmethod
    def _is_black(column: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
        on_board = (column >= -2) & (column <= 1) & (row >= -2) & (row <= 1)
        return on_board & (torch.remainder(column + row, 2) == 0)


class TwoSpirals(Density2D):
    """NSF's two spirals: radius-and-angle sqrt(U) * 3 pi, uniform offsets in [0, 0.5]^2, scaled by 1/3, noise 0.1.

    The uniform offsets and the noise do not integrate in closed form, so there is no log_prob. NSF fills half the
    points with each spiral; we pick each point's spiral at random so samples are i.i.d.
    """

    name = "two_spirals"
    has_log_prob = False

    def sample(self, num_samples: int, generator: torch.Generator) -> torch.Tensor:
        turn = _uniform(num_samples, generator).sqrt() * 540 * (2 * math.pi) / 360
        arm_x = -turn.cos() * turn + 0.5 * _uniform(num_samples, generator)
        arm_y = turn.sin() * turn + 0.5 * _uniform(num_samples, generator)
        spiral_sign = 2 * torch.randint(0, 2, (num_samples, 1), generator=generator, dtype=torch.float64) - 1
        on_spiral = spiral_sign * torch.stack([arm_x, arm_y], dim=1)
        return (on_spiral / 3 + 0.1 * _normal(num_samples, 2, generator=generator)).float()


class Gaussian(ConditionalGaussian):
    """NSF's gaussian: independent x1 ~ N(0, 1) and x2 ~ N(0, 0.5^2), the member of the family with zero mean."""

    name = "gaussian"
    log_variance = math.log(0.25)

    @staticmethod
    def conditional_mean(x1):
        return torch.zeros_like(x1)


class Crescent(ConditionalGaussian):
    """NSF's crescent: mean 0.5 x1^2 - 1, variance e^-2, emitted as (x2, x1)."""

    name = "crescent"
    log_variance = -2.0
    swap_axes = True

    @staticmethod
    def conditional_mean(x1):
        return 0.5 * x1**2 - 1


class CrescentCubed(ConditionalGaussian):
    """NSF's crescent_cubed: mean 0.2 x1^3, variance 1, emitted as (x2, x1)."""

    name = "crescent_cubed"
    log_variance = 0.0
    swap_axes = True

    @staticmethod
    def conditional_mean(x1):
        return 0.2 * x1**3


class SineWave(ConditionalGaussian):
    """NSF's sine_wave: mean sin(5 x1), variance e^-2."""

    name = "sine_wave"
    log_variance = -2.0

    @staticmethod
    def conditional_mean(x1):
        return torch.sin(5 * x1)


class Abs(ConditionalGaussian):
    """NSF's abs: mean |x1| - 1, variance e^-3."""

    name = "abs"
    log_variance = -3.0

    @staticmethod
    def conditional_mean(x1):
        return x1.abs() - 1


class Sign(ConditionalGaussian):
    """NSF's sign: mean sign(x1) + x1, variance e^-3."""

    name = "sign"
    log_variance = -3.0

    @staticmethod
    def conditional_mean(x1):
        return torch.sign(x1) + x1


DENSITIES: dict[str, type[Density2D]] = {
    cls.name: cls
    for cls in (
        EightGaussians,
        Rings,
        Checkerboard,
        TwoSpirals,
        Diamond,
        Crescent,
        CrescentCubed,
        SineWave,
        Abs,
        Sign,
        FourCircles,
        Gaussian,
    )
}


def density(name: str) -> Density2D:
    """The registered density called `name`, freshly built."""
    if name not in DENSITIES:
        raise ValueError(f"unknown 2-D density {name!r}; choose one of: {', '.join(DENSITIES)}")
    return DENSITIES[name]()
