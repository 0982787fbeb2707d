"""The picture of a 2-D flow a paper can use: true density (when known), model density and a histogram of model
samples on one colour scale, so they compare by eye, and where the truth is known the model's error on a
diverging scale of its own; titled with what and how good the run is."""

import math

import numpy as np
import torch
from matplotlib.colors import CenteredNorm, Normalize
from matplotlib.figure import Figure

from .evaluate import eval_mode

BOUND = 4.0  # the original plane experiments plot [-4, 4]^2
TICKS = (-4, -2, 0, 2, 4)
# Colour scales end at this quantile of their pixels, so a few spikes at bin corners do not wash out the picture.
CLIP_QUANTILE = 0.995
SAMPLES_PER_CELL = 2.5  # of a histogram, on average over the plot


def _grid(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    axis = torch.linspace(-BOUND, BOUND, resolution)
    xs, ys = torch.meshgrid(axis, axis, indexing="xy")
    return xs, torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def histogram_density(samples: torch.Tensor, resolution: int) -> np.ndarray:
    """Samples as a density estimate on [-4, 4]^2 (rows: y, as the density panels): counts over the number of
    samples and the cell area, so it shares the densities' scale. Up to `resolution` cells per axis, fewer for
    fewer samples, so the cells hold on average as many as 100,000 samples in 200 x 200 cells do."""
    bins = min(resolution, max(1, round(math.sqrt(len(samples) / SAMPLES_PER_CELL))))
    counts, _, _ = np.histogram2d(samples[:, 0].numpy(), samples[:, 1].numpy(), bins=bins, range=[[-BOUND, BOUND]] * 2)
    return counts.T / (len(samples) * (2 * BOUND / bins) ** 2)


@torch.no_grad()
def density_figure(
    flow, title: str, true_log_prob=None, samples=None, resolution: int = 200, num_samples: int = 100_000
) -> Figure:
    """One row: true density (when `true_log_prob` is given), model density, samples (`samples`, else
    `num_samples` fresh ones) with one colour bar, then model − true density with its own."""
    xs, points = _grid(resolution)
    parameter = next(flow.parameters())
    with eval_mode(flow):
        model = flow.log_prob(points.to(parameter.device, parameter.dtype)).exp().reshape(xs.shape).float().cpu()
        if samples is None:
            samples = flow.sample(num_samples).cpu()
    histogram = histogram_density(samples.double(), resolution)
    cells = f"{len(histogram)}×{len(histogram)}"
    densities = {"model density": model.numpy(), f"{len(samples):,} samples in {cells} bins": histogram}
    if true_log_prob is not None:
        true = true_log_prob(points).exp().reshape(xs.shape).float().numpy()
        densities = {"true density": true, **densities}
    # A bare Figure (no pyplot): nothing global to close, no display backend needed.
    panels = len(densities) + (true_log_prob is not None)
    figure = Figure(figsize=(3.6 * panels + 1, 4.2), dpi=100, layout="constrained")
    axes = list(figure.subplots(1, panels, sharey=True))
    pixels = np.concatenate([image.ravel() for image in densities.values()])
    shared = Normalize(0.0, np.quantile(pixels, CLIP_QUANTILE) or pixels.max())
    images = [_panel(axis, name, image, shared, "viridis") for axis, (name, image) in zip(axes, densities.items())]
    figure.colorbar(images[0], ax=axes[: len(densities)], label="density", shrink=0.85)
    if true_log_prob is not None:
        error = model.numpy() - true
        limit = np.quantile(np.abs(error), CLIP_QUANTILE) or np.abs(error).max()
        difference = _panel(axes[-1], "model − true density", error, CenteredNorm(0.0, limit), "RdBu_r")
        figure.colorbar(difference, ax=axes[-1], label="model − true", shrink=0.85)
    figure.suptitle(title)
    return figure


def _panel(axis, name: str, image: np.ndarray, norm: Normalize, cmap: str):
    axis.set_title(name)
    axis.set_xticks(TICKS)
    axis.set_yticks(TICKS)
    # Nearest: every grid cell a block of whole pixels, so the histogram shows its bins as they are (no smoothing)
    # and the PNG is half the size.
    extent = (-BOUND, BOUND, -BOUND, BOUND)
    return axis.imshow(image, origin="lower", extent=extent, cmap=cmap, norm=norm, interpolation="nearest")
