"""Pictures of an image flow: sample grids at several temperatures and a reconstruction check."""

import torch

from ..data.dequantization import to_display
from .evaluate import eval_mode

TEMPERATURES = (0.5, 0.75, 1.0)  # as the original's sample grids (Glow's reduced-temperature sampling)


def image_grid(images: torch.Tensor, columns: int = 8, padding: int = 1) -> torch.Tensor:
    """uint8 (N, C, H, W) -> one uint8 (C, rows·(H+p)+p, columns·(W+p)+p) picture, rows filled left to right."""
    count, channels, height, width = images.shape
    rows = -(-count // columns)
    grid = torch.zeros(
        channels, rows * (height + padding) + padding, columns * (width + padding) + padding, dtype=torch.uint8
    )
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[:, top : top + height, left : left + width] = image
    return grid


@torch.no_grad()
def sample_grids(flow, num_bits: int, num_samples: int = 64) -> dict[float, torch.Tensor]:
    """One grid of `num_samples` samples per temperature, in display pixels."""
    with eval_mode(flow):
        return {
            temperature: image_grid(to_display(flow.sample(num_samples, temperature=temperature).cpu(), num_bits))
            for temperature in TEMPERATURES
        }


@torch.no_grad()
def reconstruction(flow, batch: torch.Tensor, num_bits: int) -> tuple[torch.Tensor, float]:
    """Images and their round trip x -> z -> x (top and bottom rows), and the largest error in pixel units."""
    with eval_mode(flow):
        noise, _ = flow.transform(batch)
        recovered, _ = flow.transform.inverse(noise)
    error = (recovered - batch).abs().max().item()
    pair = torch.cat([to_display(batch.cpu(), num_bits), to_display(recovered.cpu(), num_bits)])
    return image_grid(pair, columns=len(batch)), error
