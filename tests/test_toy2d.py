"""The 2-D densities: seeded sampling, normalised exact log-densities, and samples that follow them."""

import functools
import math

import pytest
import torch

from lrsflows.data.toy2d import DENSITIES, density

NAMES = list(DENSITIES)
WITH_LOG_PROB = [name for name in NAMES if DENSITIES[name].has_log_prob]
NUM_EMPIRICAL = 200_000
# Cell side <= every density's narrowest feature (diamond: sigma 0.04), where the midpoint rule on a smooth density
# is already far below the 1% tolerance; a multiple of BLOCKS_PER_AXIS, so the blocks are unions of grid cells.
CELLS_PER_AXIS = 200
BLOCKS_PER_AXIS = 5

# A box holding all but a negligible part of each density's mass. The checkerboard box puts its cell edges on the
# squares' edges, so the midpoint sum of the piecewise-constant density is exact.
BOXES = {
    "eight_gaussians": ((-5.0, 5.0), (-5.0, 5.0)),
    "rings": ((-4.0, 4.0), (-4.0, 4.0)),
    "checkerboard": ((-4.0, 4.0), (-4.0, 4.0)),
    "diamond": ((-4.0, 4.0), (-4.0, 4.0)),
    "crescent": ((-3.0, 16.0), (-5.5, 5.5)),
    "crescent_cubed": ((-40.0, 40.0), (-5.5, 5.5)),
    "sine_wave": ((-5.5, 5.5), (-3.0, 3.0)),
    "abs": ((-5.5, 5.5), (-3.0, 6.0)),
    "sign": ((-5.5, 5.5), (-7.0, 7.0)),
    "four_circles": ((-4.0, 4.0), (-4.0, 4.0)),
    "gaussian": ((-6.0, 6.0), (-3.0, 3.0)),
}


def test_every_density_with_a_log_prob_has_a_box():
    assert sorted(BOXES) == sorted(WITH_LOG_PROB)


@functools.cache
def grid_cell_masses(name):
    """Midpoint-rule mass of every grid cell in the density's box: edges per axis and masses [cells, cells]."""
    edges = [torch.linspace(low, high, CELLS_PER_AXIS + 1, dtype=torch.float64) for low, high in BOXES[name]]
    midpoints = [(axis[1:] + axis[:-1]) / 2 for axis in edges]
    cell_area = math.prod(float(axis[1] - axis[0]) for axis in edges)
    points = torch.cartesian_prod(*midpoints)
    return edges, (density(name).log_prob(points).exp() * cell_area).reshape(CELLS_PER_AXIS, CELLS_PER_AXIS)


def draw(name, num_samples, seed):
    return density(name).sample(num_samples, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_samples_other_seed_other_samples(name):
    first = draw(name, 1000, seed=7)
    assert first.dtype == torch.float32 and first.shape == (1000, 2)
    assert torch.equal(first, draw(name, 1000, seed=7))
    assert not torch.allclose(first, draw(name, 1000, seed=8))


@pytest.mark.parametrize("name", WITH_LOG_PROB)
def test_log_prob_integrates_to_one(name):
    _, masses = grid_cell_masses(name)
    tolerance = 1e-12 if name == "checkerboard" else 1e-2
    assert masses.sum().item() == pytest.approx(1.0, abs=tolerance)


@pytest.mark.parametrize("name", WITH_LOG_PROB)
def test_samples_lie_in_the_support(name):
    log_density = density(name).log_prob(draw(name, 10_000, seed=3))
    assert log_density.dtype == torch.float64
    assert torch.isfinite(log_density).all()


@pytest.mark.parametrize("name", WITH_LOG_PROB)
def test_sample_frequencies_match_the_log_prob(name):
    """Per block of a 5x5 tiling of the box, the sampled fraction is the block's integral within 5 binomial sigmas.

    The 2/n term covers blocks whose mass is so small that a stray sample or two is still correct behaviour.
    """
    edges, masses = grid_cell_masses(name)
    step = CELLS_PER_AXIS // BLOCKS_PER_AXIS
    block_mass = masses.reshape(BLOCKS_PER_AXIS, step, BLOCKS_PER_AXIS, step).sum(dim=(1, 3))
    block_edges = [axis[::step] for axis in edges]
    counts, _ = torch.histogramdd(draw(name, NUM_EMPIRICAL, seed=11).double(), bins=block_edges)
    fraction = counts / NUM_EMPIRICAL
    tolerance = 5 * (block_mass * (1 - block_mass) / NUM_EMPIRICAL).sqrt() + 2 / NUM_EMPIRICAL
    assert ((fraction - block_mass).abs() <= tolerance).all(), (fraction - block_mass) / tolerance


def test_checkerboard_is_zero_off_the_black_squares():
    checkerboard = density("checkerboard")
    black = torch.tensor([[0.5, 0.5], [-3.0, -3.0], [3.0, -1.0], [2.0, 2.0], [-4.0, 1.0]])
    white = torch.tensor([[-0.5, 0.5], [3.0, 0.5], [1.0, 2.5], [4.5, 0.5], [0.5, -4.5]])
    assert torch.all(checkerboard.log_prob(black) == -math.log(32))
    assert torch.all(checkerboard.log_prob(white) == -math.inf)


# NSF's constants, written out independently of the library: centres, radii and noise sigma of each circle.
RING_SPECS = {
    "rings": ([[0.0, 0.0]] * 4, [3.0, 2.25, 1.5, 0.75], 0.08),
    "four_circles": ([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]], [2.0] * 4, 0.1),
}


@pytest.mark.parametrize("name", RING_SPECS)
def test_ring_log_prob_matches_a_brute_force_angle_integral(name):
    """Average the Gaussian over a fine periodic grid of angles on each circle; no Bessel function involved."""
    centres, radii, sigma = (torch.tensor(value, dtype=torch.float64) for value in RING_SPECS[name])
    points = torch.tensor([[0.0, 0.0], [3.0, 0.0], [1.1, 1.6], [0.5, -0.2], [1.9, 0.0], [-1.2, -1.9]])
    angles = torch.arange(20_000, dtype=torch.float64) * (2 * math.pi / 20_000)
    unit_circle = torch.stack([angles.cos(), angles.sin()], dim=-1)
    on_circles = (centres[:, None, :] + radii[:, None, None] * unit_circle).reshape(-1, 2)
    squared = (points.double()[:, None, :] - on_circles).pow(2).sum(-1)
    brute_force = (torch.exp(-squared / (2 * sigma**2)) / (2 * math.pi * sigma**2)).mean(dim=1)
    assert torch.allclose(density(name).log_prob(points), brute_force.log(), rtol=0, atol=1e-9)


# NSF's conditional family written out: mean of x2 given x1, variance of x2 given x1, and whether NSF emits (x2, x1).
CONDITIONAL_SPECS = {
    "gaussian": (lambda x1: 0 * x1, 0.25, False),
    "crescent": (lambda x1: 0.5 * x1**2 - 1, math.exp(-2), True),
    "crescent_cubed": (lambda x1: 0.2 * x1**3, 1.0, True),
    "sine_wave": (lambda x1: torch.sin(5 * x1), math.exp(-2), False),
    "abs": (lambda x1: x1.abs() - 1, math.exp(-3), False),
    "sign": (lambda x1: torch.sign(x1) + x1, math.exp(-3), False),
}


@pytest.mark.parametrize("name", CONDITIONAL_SPECS)
def test_conditional_family_follows_nsf(name):
    mean, variance, swapped = CONDITIONAL_SPECS[name]
    points = 3 * torch.randn(500, 2, dtype=torch.float64)
    x1, x2 = (points[:, 1], points[:, 0]) if swapped else (points[:, 0], points[:, 1])
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x1) + torch.distributions.Normal(
        mean(x1), math.sqrt(variance)
    ).log_prob(x2)
    assert torch.allclose(density(name).log_prob(points), expected, rtol=1e-12, atol=1e-12)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of: eight_gaussians, rings, .*gaussian$"):
        density("moons")


def test_two_spirals_has_no_log_prob():
    spirals = density("two_spirals")
    assert not spirals.has_log_prob
    with pytest.raises(NotImplementedError, match="two_spirals has no closed-form log-density"):
        spirals.log_prob(torch.zeros(3, 2))
