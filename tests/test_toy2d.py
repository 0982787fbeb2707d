"""The 2-D densities: seeded sampling, normalised exact log-densities, and samples that follow them; and the
pictures of a 2-D flow trained on them."""

import functools
import math
import re

import numpy as np
import pytest
import test_choices
import torch
from PIL import Image
from test_choices import compose_config

import lrsflows
from lrsflows.config import Task
from lrsflows.data.toy2d import DENSITIES, density
from lrsflows.train import tasks
from lrsflows.train.kinds import publish
from lrsflows.train.plots import BOUND, TICKS, density_figure, histogram_density

trained_2d = test_choices.trained_2d  # the fixture: a two-step task=train run on the default 2-D density

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


# ---------------------------------------------------------------------------------- pictures of a trained flow


def png(path) -> tuple[str, np.ndarray]:
    """A PNG's title (its Title text) and pixels, read back from disk."""
    with Image.open(path) as picture:
        return picture.text["Title"], np.asarray(picture)


def panels(figure) -> dict:
    """The figure's picture panels by title (colour bars left out)."""
    return {axis.get_title(): axis for axis in figure.axes if axis.get_label() != "<colorbar>"}


def colour_bar_labels(figure) -> list[str]:
    return [axis.get_ylabel() for axis in figure.axes if axis.get_label() == "<colorbar>"]


def test_a_trained_runs_picture_names_dataset_model_best_step_and_test_score(trained_2d):
    run_dir, record = trained_2d
    assert record["pictures"] == [str(run_dir / "pictures" / "density_step0000002.png")]
    title, pixels = png(record["pictures"][0])
    assert title.startswith(
        f"{record['dataset']} · LRS (C) · step {record['best_step']} of 2 (best validation) · "
        f"test log likelihood {record['value']:.3f} ± "
    ), title
    assert f" · KL gap {record['kl_gap']:.3f} ± " in title and title.endswith(" nats"), title
    assert pixels.shape[:2] == (420, 1540)  # four panels, two colour bars


def test_the_densities_and_samples_share_one_colour_scale_beside_a_centred_difference(trained_2d):
    run_dir, record = trained_2d
    flow = lrsflows.load_flow(run_dir / "checkpoints" / "best.pt")
    truth = density(record["dataset"])
    figure = density_figure(flow, "a title", truth.log_prob, resolution=100, num_samples=20_000)
    assert figure.get_suptitle() == "a title"
    shown = panels(figure)
    names = list(shown)
    assert names[:2] == ["true density", "model density"] and names[3] == "model − true density", names
    assert re.fullmatch(r"20,000 samples in (\d+)×\1 bins", names[2]), names[2]
    assert colour_bar_labels(figure) == ["density", "model − true"]
    images = [axis.images[0] for axis in shown.values()]
    scales = {(image.norm.vmin, image.norm.vmax) for image in images[:3]}
    assert len(scales) == 1 and next(iter(scales))[0] == 0 and next(iter(scales))[1] > 0, scales
    difference = images[3]
    assert difference.norm.vmin == -difference.norm.vmax > -math.inf and difference.cmap.name == "RdBu_r"
    model, true = images[1].get_array(), images[0].get_array()
    assert np.allclose(difference.get_array(), model - true)
    assert all(list(axis.get_xticks()) == list(TICKS) == list(axis.get_yticks()) for axis in shown.values())


def test_a_density_without_a_closed_form_is_pictured_without_truth_and_difference(trained_2d):
    flow = lrsflows.load_flow(trained_2d[0] / "checkpoints" / "best.pt")
    figure = density_figure(flow, "two_spirals", None, resolution=50, num_samples=1000)
    assert list(panels(figure)) == ["model density", "1,000 samples in 20×20 bins"]
    assert colour_bar_labels(figure) == ["density"]


def test_the_sample_histogram_is_a_density_of_all_samples_with_y_up():
    samples = torch.tensor([[3.9, -3.9], [3.9, -3.9], [-3.9, 3.9], [0.5, 0.5], [5.0, 0.0]] * 200)  # 1,000
    estimate = histogram_density(samples, resolution=200)
    bins = len(estimate)
    assert estimate.shape == (20, 20)  # 2.5 samples a cell on average
    cell_area = (2 * BOUND / bins) ** 2
    assert estimate.sum() * cell_area * len(samples) == pytest.approx(800)  # the 200 at x = 5 lie outside
    assert estimate[0, -1] * cell_area == pytest.approx(0.4) and estimate[-1, 0] * cell_area == pytest.approx(0.2)
    assert histogram_density(torch.zeros(100_000, 2), resolution=200).shape == (200, 200)  # training's pictures


def test_a_training_picture_names_the_step(trained_2d, tmp_path):
    run_dir, record = trained_2d
    path = run_dir / "checkpoints" / "best.pt"
    config = compose_config({"task": Task.sample, "ckpt": path, "trainer.device": "cpu"})
    [picture] = tasks.save_pictures(lrsflows.load_flow(path), config, None, tmp_path, None, 5)
    assert picture == tmp_path / "pictures" / "density_step0000005.png"
    assert png(picture)[0] == f"{config.dataset.name} · LRS (C) · step 5"


def test_task_sample_pictures_the_n_samples_it_saved_at_their_temperature(trained_2d, tmp_path):
    run_dir, record = trained_2d
    path = run_dir / "checkpoints" / "best.pt"
    config = compose_config({"task": Task.sample, "ckpt": path, "n": 300, "temperature": 0.5, "trainer.device": "cpu"})
    samples = torch.from_numpy(np.load(tasks.sample(config, tmp_path)))
    title, pixels = png(tmp_path / "pictures" / "samples_n300_T0.5.png")
    assert title == f"{record['dataset']} · LRS (C) · step {record['best_step']} · n = 300 · T = 0.5"
    # The picture is exactly the figure of samples.npy's samples: a fresh draw would show another histogram.
    figure = density_figure(lrsflows.load_flow(path), title, density(record["dataset"]).log_prob, samples=samples)
    assert np.array_equal(png(publish(figure, tmp_path / "again.png", None, "density", 0))[1], pixels)
    histogram = next(axis for name, axis in panels(figure).items() if name.startswith("300 samples in "))
    estimate = histogram.images[0].get_array()
    assert (abs(samples) < BOUND).all() and estimate.sum() * 300 * (2 * BOUND / len(estimate)) ** 2 == pytest.approx(
        300
    )
