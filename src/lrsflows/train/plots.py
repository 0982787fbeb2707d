"""Pictures of a 2-D flow: the true density, the model density on a grid, and a histogram of model samples."""

import torch
from matplotlib.figure import Figure

from .evaluate import eval_mode

BOUND = 4.0  # the original plane experiments plot [-4, 4]^2


def _grid(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    axis = torch.linspace(-BOUND, BOUND, resolution)
    xs, ys = torch.meshgrid(axis, axis, indexing="xy")
    return xs, torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


@torch.no_grad()
def density_figure(flow, true_log_prob=None, resolution: int = 200, num_samples: int = 100_000):
    """A row of panels: true density (when known), model density, model samples."""
    xs, points = _grid(resolution)
    parameter = next(flow.parameters())
    points = points.to(parameter.device, parameter.dtype)
    with eval_mode(flow):
        model_density = flow.log_prob(points).exp().reshape(xs.shape).float().cpu()
        samples = flow.sample(num_samples).float().cpu()
    panels = [("model density", model_density)]
    if true_log_prob is not None:
        panels.insert(0, ("true density", true_log_prob(points.cpu()).exp().reshape(xs.shape).float()))
    # A bare Figure (no pyplot): nothing global to close, no display backend needed.
    figure = Figure(figsize=(4 * (len(panels) + 1), 4))
    axes = figure.subplots(1, len(panels) + 1)
    extent = (-BOUND, BOUND, -BOUND, BOUND)
    for axis, (title, image) in zip(axes, panels):
        # Colour scale to the 99.5th percentile, so a few spikes at bin corners do not wash out the picture.
        axis.imshow(image.numpy(), origin="lower", extent=extent, cmap="viridis", vmax=image.quantile(0.995).item())
        axis.set_title(title)
    axes[-1].hist2d(
        samples[:, 0].numpy(), samples[:, 1].numpy(), bins=resolution, range=[[-BOUND, BOUND]] * 2, cmap="viridis"
    )
    axes[-1].set_title("model samples")
    for axis in axes:
        axis.set_aspect("equal")
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    return figure
