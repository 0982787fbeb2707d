"""Pictures of an image flow a paper can use: sample grids at several temperatures and a reconstruction check,
each image enlarged to a readable size with grey lines between (visible on MNIST's black and on white), drawn
pixel for pixel under a title."""

import math

import torch
from matplotlib.figure import Figure

from ..data.dequantization import to_display
from .evaluate import eval_mode

TEMPERATURES = (0.5, 0.75, 1.0)  # as the original's sample grids (Glow's reduced-temperature sampling)
READABLE_SIDE = 64  # px an image is enlarged to at least, by a whole factor (MNIST's 28 -> 84, CIFAR's 32 -> 64)
PADDING = 4  # px of grey between and around the images
GREY = 128
DPI = 100
TITLE_HEIGHT = 60  # px above the grid: up to three lines of the title
MIN_WIDTH = 640  # px, so a title fits above a narrow grid


def image_grid(images: torch.Tensor, columns: int, padding: int = PADDING, scale: int = 1) -> torch.Tensor:
    """uint8 (N, C, H, W) -> one uint8 (C, rows·(s·H+p)+p, columns·(s·W+p)+p) picture: each image enlarged s times
    by repeating its pixels, rows filled left to right, grey around them and in empty cells."""
    images = images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    count, channels, height, width = images.shape
    rows = -(-count // columns)
    grid = torch.full(
        (channels, rows * (height + padding) + padding, columns * (width + padding) + padding), GREY, dtype=torch.uint8
    )
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[:, top : top + height, left : left + width] = image
    return grid


def readable_grid(images: torch.Tensor, columns: int | None = None) -> torch.Tensor:
    """`image_grid` with each image at least READABLE_SIDE px high, square-ish unless `columns` is given."""
    scale = -(-READABLE_SIDE // images.shape[2])
    return image_grid(images, columns or math.ceil(math.sqrt(len(images))), scale=scale)


def grid_figure(grid: torch.Tensor, title: str) -> Figure:
    """A uint8 (C, H, W) grid pixel for pixel (no resampling, at DPI) under `title`, centred on a white page."""
    _, height, width = grid.shape
    page_width = max(width, MIN_WIDTH)
    figure = Figure(figsize=(page_width / DPI, (height + TITLE_HEIGHT) / DPI), dpi=DPI)
    # As RGB even for one channel: a colour map would round some greys one level down.
    picture = grid.expand(3, -1, -1).permute(1, 2, 0).numpy()
    figure.figimage(picture, xo=(page_width - width) // 2, yo=0, origin="upper")
    figure.suptitle(title, y=1 - 4 / (height + TITLE_HEIGHT), va="top", fontsize=10, wrap=True)
    return figure


@torch.no_grad()
def sample_grids(flow, num_bits: int, num_samples: int = 64) -> dict[float, torch.Tensor]:
    """One readable grid of `num_samples` samples per temperature, in display pixels."""
    with eval_mode(flow):
        return {
            temperature: readable_grid(to_display(flow.sample(num_samples, temperature=temperature).cpu(), num_bits))
            for temperature in TEMPERATURES
        }


@torch.no_grad()
def reconstruction(flow, batch: torch.Tensor, num_bits: int) -> tuple[torch.Tensor, float]:
    """Images and their round trip x -> z -> x (top and bottom rows) as a readable grid, and the largest error in
    pixel units."""
    with eval_mode(flow):
        noise, _ = flow.transform(batch)
        recovered, _ = flow.transform.inverse(noise)
    error = (recovered - batch).abs().max().item()
    pair = torch.cat([to_display(batch.cpu(), num_bits), to_display(recovered.cpu(), num_bits)])
    return readable_grid(pair, columns=len(batch)), error
